// The ceiling of cooperative-matrix kernels that stage their operands in
// shared memory (issue 7): C = A B with A (M x K) and B (K x N) row-major
// f16 and C row-major f32, on NV cooperative matrices of 16x16x16. The
// register-only rate (coopmat_rate in timing.hpp) counts no memory traffic;
// this is what a kernel reaches once its tiles come through shared memory
// under the 48 KiB limit, the realistic target for the prefill.
//
// Work split: a workgroup of grid_rows x grid_cols subgroups computes a
// rows x cols tile of C; each subgroup a (rows / grid_rows) x (cols /
// grid_cols) block as 16x16 f32 accumulators in registers. Each step of
// `depth` along K copies the A (rows x depth) and B (depth x cols) slices
// to shared memory with 16-byte loads (rows padded by 8 halves against bank
// conflicts), the next slice's loads in flight in registers during the
// products; two barriers per step.
#pragma once

#include <cstdint>
#include <string_view>

#include "tessel/bench/timing.hpp"
#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/error.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::bench {

// The kernel's subgroup layout assumes 32 lanes (NVIDIA's).
inline constexpr std::uint32_t coopmat_gemm_lanes = 32;

struct GemmParams {
  std::uint32_t m, n, k;
};
TESSEL_PARAMS(GemmParams, m, n, k);
static_assert(layout<GemmParams>::matches_host);

struct coopmat_gemm_tiles {
  std::uint32_t rows = 128, cols = 256, depth = 32;
  std::uint32_t grid_rows = 4, grid_cols = 2;
  friend constexpr bool operator==(const coopmat_gemm_tiles&, const coopmat_gemm_tiles&) = default;
};

// The shape of the stand-alone probe that reached ~205 TFLOP/s on the H100
// (../shared/PLATFORM.md): 128 x 256 tiles, 8 subgroups of 32 x 128, K steps
// of 32.
inline constexpr coopmat_gemm_tiles coopmat_gemm_default_tiles{};

constexpr std::uint32_t coopmat_gemm_shared_bytes(coopmat_gemm_tiles t) {
  return (t.rows * (t.depth + 8) + t.depth * (t.cols + 8)) * 2;
}

template <coopmat_gemm_tiles Tiles = coopmat_gemm_default_tiles>
struct coopmat_gemm {
  static constexpr coopmat_gemm_tiles tiles = Tiles;
  static constexpr std::uint32_t subgroups = Tiles.grid_rows * Tiles.grid_cols;
  static constexpr std::uint32_t threads = subgroups * coopmat_gemm_lanes;
  static constexpr std::uint32_t block_rows = Tiles.rows / Tiles.grid_rows;
  static constexpr std::uint32_t block_cols = Tiles.cols / Tiles.grid_cols;
  static_assert(block_rows % 16 == 0 && block_cols % 16 == 0 && Tiles.depth % 16 == 0,
                "coopmat_gemm: each subgroup's block and the K step must be whole 16x16 tiles");
  static_assert(Tiles.rows * Tiles.depth / 8 % threads == 0 &&
                    Tiles.depth * Tiles.cols / 8 % threads == 0,
                "coopmat_gemm: the A and B slices must be whole 16-byte chunks per invocation");
  static_assert(coopmat_gemm_shared_bytes(Tiles) <= targets::nvidia.shared_memory_bytes,
                "coopmat_gemm: the slices must fit the NVIDIA target's shared memory");

  static constexpr auto name =
      tessel::name("bench_coopmat_gemm", "m", Tiles.rows, "n", Tiles.cols, "k", Tiles.depth, "g",
                   Tiles.grid_rows, "x", Tiles.grid_cols);
  using params = GemmParams;
  using wide = vec<std::uint32_t, 4>;
  using bindings = tessel::bindings<in<"A", f16, wide>, in<"B", f16, wide>, out<"C", float>>;
  using geometry =
      tessel::geometry<constant<"BM", Tiles.rows>, constant<"BN", Tiles.cols>,
                       constant<"BK", Tiles.depth>, constant<"GRID_COLS", Tiles.grid_cols>,
                       constant<"FM", block_rows / 16>, constant<"FN", block_cols / 16>,
                       constant<"THREADS", threads>, constant<"A_STRIDE", (Tiles.depth + 8) / 8>,
                       constant<"B_STRIDE", (Tiles.cols + 8) / 8>,
                       constant<"A_CHUNKS", Tiles.rows * Tiles.depth / 8 / threads>,
                       constant<"B_CHUNKS", Tiles.depth * Tiles.cols / 8 / threads>,
                       constant<"B_OFFSET", Tiles.rows*(Tiles.depth + 8) / 8>,
                       constant<"SUBGROUP_SCOPE", 3>>;  // gl_ScopeSubgroup
  using workgroup = tessel::workgroup<coopmat_gemm_lanes, subgroups>;
  static constexpr extension extensions = extension::cooperative_matrix_nv |
                                          extension::explicit_float16 | extension::subgroup_basic |
                                          extension::control_flow_attributes;
  static constexpr std::uint32_t shared_bytes(const target&) {
    return coopmat_gemm_shared_bytes(Tiles);
  }
  static constexpr std::string_view body = R"glsl(
#define F16_TILE fcoopmatNV<16, SUBGROUP_SCOPE, 16, 16>
#define F32_TILE fcoopmatNV<32, SUBGROUP_SCOPE, 16, 16>

// The A slice (BM rows of A_STRIDE chunks), then the B slice from B_OFFSET.
shared uvec4 slices[B_OFFSET + BK * B_STRIDE];

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint k_chunks = params.k / 8u, n_chunks = params.n / 8u;
  const uint first_row = gl_WorkGroupID.y * BM, first_col = gl_WorkGroupID.x * BN;
  const uint block_row = (gl_SubgroupID / GRID_COLS) * FM * 16u;
  const uint block_col = (gl_SubgroupID % GRID_COLS) * FN * 16u;

  uvec4 a_next[A_CHUNKS], b_next[B_CHUNKS];
  [[unroll]] for (uint i = 0u; i < A_CHUNKS; ++i) {
    const uint c = tid + i * THREADS;
    a_next[i] = A_wide[(first_row + c / (BK / 8u)) * k_chunks + c % (BK / 8u)];
  }
  [[unroll]] for (uint i = 0u; i < B_CHUNKS; ++i) {
    const uint c = tid + i * THREADS;
    b_next[i] = B_wide[(c / (BN / 8u)) * n_chunks + first_col / 8u + c % (BN / 8u)];
  }

  F32_TILE acc[FM][FN];
  [[unroll]] for (uint i = 0u; i < FM; ++i)
    [[unroll]] for (uint j = 0u; j < FN; ++j) acc[i][j] = F32_TILE(0.0);

  for (uint step = 0u; step < params.k; step += BK) {
    // Every subgroup is done with the previous slices.
    barrier();
    [[unroll]] for (uint i = 0u; i < A_CHUNKS; ++i) {
      const uint c = tid + i * THREADS;
      slices[(c / (BK / 8u)) * A_STRIDE + c % (BK / 8u)] = a_next[i];
    }
    [[unroll]] for (uint i = 0u; i < B_CHUNKS; ++i) {
      const uint c = tid + i * THREADS;
      slices[B_OFFSET + (c / (BN / 8u)) * B_STRIDE + c % (BN / 8u)] = b_next[i];
    }
    barrier();
    const uint next = step + BK;
    if (next < params.k) {
      [[unroll]] for (uint i = 0u; i < A_CHUNKS; ++i) {
        const uint c = tid + i * THREADS;
        a_next[i] = A_wide[(first_row + c / (BK / 8u)) * k_chunks + next / 8u + c % (BK / 8u)];
      }
      [[unroll]] for (uint i = 0u; i < B_CHUNKS; ++i) {
        const uint c = tid + i * THREADS;
        b_next[i] = B_wide[(next + c / (BN / 8u)) * n_chunks + first_col / 8u + c % (BN / 8u)];
      }
    }
    [[unroll]] for (uint kk = 0u; kk < BK; kk += 16u) {
      F16_TILE a[FM];
      [[unroll]] for (uint i = 0u; i < FM; ++i)
        coopMatLoadNV(a[i], slices, (block_row + 16u * i) * A_STRIDE + kk / 8u, A_STRIDE, false);
      [[unroll]] for (uint j = 0u; j < FN; ++j) {
        F16_TILE b;
        coopMatLoadNV(b, slices, B_OFFSET + kk * B_STRIDE + (block_col + 16u * j) / 8u, B_STRIDE,
                      false);
        [[unroll]] for (uint i = 0u; i < FM; ++i) acc[i][j] = coopMatMulAddNV(a[i], b, acc[i][j]);
      }
    }
  }

  [[unroll]] for (uint i = 0u; i < FM; ++i)
    [[unroll]] for (uint j = 0u; j < FN; ++j)
      coopMatStoreNV(acc[i][j], C,
                     (first_row + block_row + 16u * i) * params.n + first_col + block_col + 16u * j,
                     params.n, false);
}
)glsl";
};

// Whether a device runs coopmat_gemm<Tiles>: the 16x16x16 f16 shape
// (has_coopmat_rate), 32-lane subgroups and the slices' shared memory.
template <coopmat_gemm_tiles Tiles = coopmat_gemm_default_tiles>
bool coopmat_gemm_supported(const vk::device_traits& device) {
  return has_coopmat_rate(device) && device.subgroup_size == coopmat_gemm_lanes &&
         coopmat_gemm_shared_bytes(Tiles) <= device.shared_memory_bytes;
}

// Records C = A B for A (m x k), B (k x n) and C (m x n), row-major; the
// dimensions must be whole tiles, and C's element count below 2^32 (32-bit
// indices in the kernel).
template <coopmat_gemm_tiles Tiles = coopmat_gemm_default_tiles>
void record_coopmat_gemm(vk::recorder& rec, std::uint32_t m, std::uint32_t n, std::uint32_t k,
                         const vk::buffer<f16>& a, const vk::buffer<f16>& b,
                         const vk::buffer<float>& c) {
  constexpr std::string_view op = "coopmat_gemm";
  const auto whole = [&](std::string_view argument, std::uint32_t value, std::uint32_t tile) {
    require(value > 0 && value % tile == 0, op, argument, value,
            "must be a positive multiple of the tile's " + std::to_string(tile));
  };
  whole("m", m, Tiles.rows);
  whole("n", n, Tiles.cols);
  whole("k", k, Tiles.depth);
  kernels::require_32bit_indexable(op, "C", std::uint64_t{m} * n);
  kernels::require_elements(op, "A", a.size(), std::uint64_t{m} * k);
  kernels::require_elements(op, "B", b.size(), std::uint64_t{k} * n);
  kernels::require_elements(op, "C", c.size(), std::uint64_t{m} * n);
  require(coopmat_gemm_supported<Tiles>(rec.device()), op, "device", rec.device().name,
          "must have NV cooperative matrices of 16x16x16 f16 x f16 -> f32, 32-lane subgroups and " +
              std::to_string(coopmat_gemm_shared_bytes(Tiles)) + " bytes of shared memory");
  rec.dispatch<coopmat_gemm<Tiles>>(GemmParams{m, n, k}, {}, {n / Tiles.cols, m / Tiles.rows, 1}, a,
                                    b, c);
}

}  // namespace tessel::bench
