// The decode reduce (KERNELS.md 7.4-7.5): merges the partial results that NWG
// workgroups wrote for each query row into the final output row.
//
// Partials layout (f32), for nrows rows of head_dim D and NWG workgroups:
//   unnormalized O: float4 chunk i of row r from workgroup w at float4 index
//                   r*(D/4)*NWG + NWG*i + w;
//   statistics:     after nrows*D*NWG floats, (S, M) of (r, w) at
//                   2*(r*NWG + w) and the next float.
// out[r] = sum_w exp(M_w - M*) O_w / sum_w exp(M_w - M*) S_w with M* = max_w M_w,
// and exactly 0 when the denominator is 0 (every slice fully masked).
#pragma once

#include <cstdint>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// ReduceParams, 4 bytes.
struct ReduceParams {
  std::uint32_t nrows;
};
TESSEL_PARAMS(ReduceParams, nrows);
static_assert(layout<ReduceParams>::size == 4);
static_assert(layout<ReduceParams>::matches_host);

// Largest NWG the reduce accepts (the weights live in shared memory).
inline constexpr std::uint32_t max_decode_nwg = 256;

// Float count of the partials buffer for nrows rows, head_dim and nwg.
constexpr std::uint64_t decode_partials_size(std::uint64_t nrows, std::uint64_t head_dim,
                                             std::uint64_t nwg) {
  return nrows * nwg * (head_dim + 2);
}

// One workgroup per row. NWG is a specialization constant: a decode loop uses
// one or two values, each compiled once.
template <int D>
struct decode_reduce {
  static_assert(D % 4 == 0 && D > 0, "decode_reduce: head_dim must be a multiple of 4");
  static constexpr auto name = tessel::name("decode_reduce", "d", D);
  static constexpr std::uint32_t threads = D < 128 ? D : 128;
  using params = ReduceParams;
  using bindings = tessel::bindings<in<"partials", float>, out<"dst", float>>;
  using constants = tessel::constants<spec<"nwg", std::uint32_t, 0, 32u>>;
  using geometry =
      tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                       constant<"MAX_NWG", max_decode_nwg>, constant<"THREADS", threads>>;
  using workgroup = tessel::workgroup<threads>;
  static constexpr std::uint32_t shared_bytes(const target&) {
    return (max_decode_nwg + 1) * sizeof(float);
  }
  static constexpr std::string_view body = R"glsl(
shared float slice_weight[MAX_NWG];
shared float inverse_sum;

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= params.nrows) return;
  const uint tid = gl_LocalInvocationID.x;
  const uint stats = params.nrows * D * nwg + row * 2u * nwg;
  if (tid == 0u) {
    // Empty slices hold S = 0 and the finite sentinel M = -FLT_MAX/2, so
    // they get weight 0 (or 1 times S = 0) and never produce NaN.
    float row_max = -1.70141173e38;
    for (uint w = 0u; w < nwg; ++w) row_max = max(row_max, partials[stats + 2u * w + 1u]);
    float sum = 0.0;
    for (uint w = 0u; w < nwg; ++w) {
      const float weight = exp(partials[stats + 2u * w + 1u] - row_max);
      slice_weight[w] = weight;
      sum += weight * partials[stats + 2u * w];
    }
    inverse_sum = sum == 0.0 ? 0.0 : 1.0 / sum;
  }
  barrier();
  const uint row_base = row * (D / 4u) * nwg;
  for (uint d = tid; d < D; d += THREADS) {
    const uint chunk_base = 4u * (row_base + nwg * (d >> 2)) + (d & 3u);
    float acc = 0.0;
    for (uint w = 0u; w < nwg; ++w) acc += slice_weight[w] * partials[chunk_base + 4u * w];
    dst[row * D + d] = acc * inverse_sum;
  }
}
)glsl";
};

using decode_reduce_variants =
    variant_list<decode_reduce<64>, decode_reduce<128>, decode_reduce<256>, decode_reduce<512>>;

// The reduce's shape rules for a variant of head dim `head_dim`.
inline void validate_decode_reduce_shape(std::uint32_t nrows, std::uint32_t head_dim,
                                         std::uint32_t nwg, std::uint64_t partials_elements,
                                         std::uint64_t dst_elements) {
  constexpr std::string_view op = "decode_reduce";
  require_positive(op, "nrows", nrows);
  require_in_range(op, "nwg", nwg, 1, max_decode_nwg);
  const std::uint64_t partials = checked_product(op, "partials size", {nrows, nwg, head_dim + 2u});
  require_32bit_indexable(op, "partials", partials);
  // A scratch buffer sized for a larger split may be reused.
  require(partials_elements >= partials, op, "partials element count", partials_elements,
          "must be >= " + std::to_string(partials) + " for the given shape");
  require_elements(op, "dst", dst_elements, checked_product(op, "dst size", {nrows, head_dim}));
}

// The same, and the head dim is one tessel ships.
inline void validate_decode_reduce(std::uint32_t nrows, std::uint32_t head_dim, std::uint32_t nwg,
                                   std::uint64_t partials_elements, std::uint64_t dst_elements) {
  require_one_of("decode_reduce", "head_dim", head_dim, {64, 128, 256, 512});
  validate_decode_reduce_shape(nrows, head_dim, nwg, partials_elements, dst_elements);
}

// Records the merge of `partials` (at least decode_partials_size floats)
// into `dst` ([nrows, D] f32) with the decode_reduce<D> variant.
template <int D>
void record_decode_reduce_for(vk::recorder& rec, const vk::buffer<float>& partials,
                              const vk::buffer<float>& dst, std::uint32_t nrows,
                              std::uint32_t nwg) {
  validate_decode_reduce_shape(nrows, D, nwg, partials.size(), dst.size());
  const vk::spec_value spec[] = {{0, nwg}};
  rec.dispatch<decode_reduce<D>>(ReduceParams{nrows}, spec, row_grid(nrows), partials, dst);
}

// The same for a run-time head dim among the shipped variants.
inline void record_decode_reduce(vk::recorder& rec, const vk::buffer<float>& partials,
                                 const vk::buffer<float>& dst, std::uint32_t nrows,
                                 std::uint32_t head_dim, std::uint32_t nwg) {
  validate_decode_reduce(nrows, head_dim, nwg, partials.size(), dst.size());
  with_head_dim<64, 128, 256, 512>("decode_reduce", head_dim, [&](auto d) {
    record_decode_reduce_for<decltype(d)::value>(rec, partials, dst, nrows, nwg);
  });
}

}  // namespace tessel::kernels
