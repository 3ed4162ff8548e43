// Flash-attention prefill (KERNELS.md sections 2, 3, 6): many query rows
// against many keys, f16 or bf16 in and out, f32 accumulation.
//
//   O[b, h, i] = softmax_j(scale * <Q[b, h, i], K[b, h / G, j]> + bias[i, j]) V[b, h / G, j]
//
// where G = num_heads / num_kv_heads (GQA) and bias comes from an optional
// additive (f16/bf16, -inf = blocked) or boolean (u8, 0 = blocked) mask of
// rank 2 ([query_len, key_len], broadcast) or 4 ([batch, num_heads, query_len,
// key_len]), plus in-kernel causal masking: row i sits at absolute position
// query_offset + i among the keys and attends keys j <= query_offset + i.
// A row with no attended key gives exact zeros.
//
// This header holds the portable kernel (subgroup arithmetic and shared
// memory only) and the host op, which runs the cooperative-matrix kernel
// (prefill_coopmat.hpp) where the device has one and the portable one
// elsewhere. The parameter blocks, the problem and its validation are in
// prefill_shared.hpp; the tile classifier that lets the kernels skip
// blocked tiles is in prefill_blk.hpp.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/prefill_coopmat.hpp"
#include "tessel/kernels/prefill_shared.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// --- the portable kernel -----------------------------------------------------

namespace detail {

// The kernel's main(); see prefill below for the work split.
inline constexpr std::string_view prefill_main = R"glsl(
shared CHUNK k_tile[TILE_CHUNKS];
shared CHUNK v_tile[TILE_CHUNKS];

void main() {
  const float neg_inf = uintBitsToFloat(0xFF800000u);
  const uint query_tile = gl_WorkGroupID.x;
  const uint head = gl_WorkGroupID.y;
  const uint batch = gl_WorkGroupID.z;
  const uint kv_head = head / uint(params.gqa_factor);
  const uint query_len = uint(params.query_len);
  const uint key_len = uint(params.key_len);
  const uint query_offset = uint(params.query_offset);
  const uint num_key_tiles = uint(params.num_key_tiles);
  const uint tid = gl_LocalInvocationIndex;
  // Aligned groups of 8 lanes; group g owns rows g*ROWS .. g*ROWS+ROWS-1 of
  // the tile, lane l its dims CW*(8j + l) .. +CW-1 for j < LANE_CHUNKS.
  const uint lane = gl_SubgroupInvocationID & 7u;
  const uint group_first_lane = gl_SubgroupInvocationID & ~7u;
  const uint row_group = gl_SubgroupID * (gl_SubgroupSize >> 3) + (gl_SubgroupInvocationID >> 3);
  const uint first_row = query_tile * BQ + row_group * ROWS;

  // Offsets are 32-bit: the host checks every buffer's element count fits.
  const uint q_row_stride = uint(params.q_strides[2]);
  const uint k_row_stride = uint(params.k_strides[2]);
  const uint v_row_stride = uint(params.v_strides[2]);
  const uint o_row_stride = uint(params.o_strides[2]);
  const uint mask_row_stride = uint(params.mask_strides[2]);
  const uint q_base = batch * uint(params.q_strides[0]) + head * uint(params.q_strides[1]);
  const uint k_base = batch * uint(params.k_strides[0]) + kv_head * uint(params.k_strides[1]);
  const uint v_base = batch * uint(params.v_strides[0]) + kv_head * uint(params.v_strides[1]);
  const uint o_base = batch * uint(params.o_strides[0]) + head * uint(params.o_strides[1]);
  const uint mask_base =
      batch * uint(params.mask_strides[0]) + head * uint(params.mask_strides[1]);

  // Query rows live in registers, scaled by scale * log2(e) in f32 so the
  // softmax runs in base 2. Rows past query_len are zero and never stored.
  const float q_scale = params.scale * LOG2E;
  CHUNK q[ROWS][LANE_CHUNKS];
  CHUNK o[ROWS][LANE_CHUNKS];
  float row_max[ROWS];
  float row_sum[ROWS];  // this lane's share; the group's sum is taken at the end
  for (uint r = 0u; r < ROWS; ++r) {
    const uint row = first_row + r;
    for (uint j = 0u; j < LANE_CHUNKS; ++j) {
      q[r][j] = CHUNK(0.0);
      if (align_Q || row < query_len)
        q[r][j] = LOAD_CHUNK(Q, q_base + row * q_row_stride + CW * (j * 8u + lane)) * q_scale;
      o[r][j] = CHUNK(0.0);
    }
    row_max[r] = MAX_SENTINEL;
    row_sum[r] = 0.0;
  }

  // Causal: no row of this tile attends a key past its last row's position.
  uint tile_end = num_key_tiles;
  if (do_causal) {
    const uint last_row = min(query_tile * BQ + BQ, query_len) - 1u;
    tile_end = min(tile_end, (last_row + query_offset) / BK + 1u);
  }
  // A rank-4 mask has one plane of tile classes per (batch, head).
  const bool mask_broadcast = params.mask_strides[0] == 0 && params.mask_strides[1] == 0;
  const uint blk_base = (mask_broadcast ? 0u : batch * uint(params.num_heads) + head) *
                        uint(params.num_query_tiles) * num_key_tiles +
                        query_tile * num_key_tiles;

  for (uint key_tile = 0u; key_tile < tile_end; ++key_tile) {
    // 0: every cell blocked, skip the tile; 2: every cell attended with bias
    // 0, skip the mask; 1: mixed. Uniform over the workgroup.
    uint tile_class = 1u;
    if (has_blk) tile_class = uint(blk[blk_base + key_tile]);
    if (tile_class == 0u) continue;

    // K and V tiles to shared memory as f32. Keys past key_len are zeros,
    // never read: their scores are -inf, and 0 * V must stay 0.
    const uint first_key = key_tile * BK;
    for (uint c = tid; c < TILE_CHUNKS; c += THREADS) {
      const uint key = first_key + c / ROW_CHUNKS;
      const uint d = CW * (c % ROW_CHUNKS);
      CHUNK k_chunk = CHUNK(0.0);
      CHUNK v_chunk = CHUNK(0.0);
      if (align_K || key < key_len) {
        k_chunk = LOAD_CHUNK(K, k_base + key * k_row_stride + d);
        v_chunk = LOAD_CHUNK(V, v_base + key * v_row_stride + d);
      }
      k_tile[c] = k_chunk;
      v_tile[c] = v_chunk;
    }
    barrier();

    const bool add_mask = has_mask && tile_class == 1u;
    for (uint group_key = 0u; group_key < BK; group_key += 8u) {
      // Each lane's partial dot products over its dims with 8 keys; the
      // reduce-scatter leaves lane l the full score of key group_key + l.
      float partial[ROWS][8];
      for (uint r = 0u; r < ROWS; ++r)
        for (uint k = 0u; k < 8u; ++k) partial[r][k] = 0.0;
      for (uint j = 0u; j < LANE_CHUNKS; ++j)
        for (uint k = 0u; k < 8u; ++k) {
          const CHUNK k_chunk = k_tile[(group_key + k) * ROW_CHUNKS + j * 8u + lane];
          for (uint r = 0u; r < ROWS; ++r) partial[r][k] += dot(q[r][j], k_chunk);
        }
      const uint key = first_key + group_key + lane;
      float p[ROWS];
      for (uint r = 0u; r < ROWS; ++r) {
        const uint row = first_row + r;
        float score = group8_reduce_scatter(partial[r], lane);
        if (!align_K && key >= key_len) {
          score = neg_inf;
        } else {
          if (do_causal && key > row + query_offset) score = neg_inf;
          if (add_mask && (align_Q || row < query_len))
            score = masked_score(score, mask_base + row * mask_row_stride + key);
        }
        // Online softmax, base 2, over these 8 keys.
        const float new_max = max(row_max[r], group8_max(score));
        const float correction = exp2(row_max[r] - new_max);
        p[r] = exp2(score - new_max);
        row_max[r] = new_max;
        row_sum[r] = row_sum[r] * correction + p[r];
        for (uint j = 0u; j < LANE_CHUNKS; ++j) o[r][j] *= correction;
      }
      // O += P V: each key's probability reaches the group's lanes by shuffle.
      for (uint k = 0u; k < 8u; ++k) {
        float weight[ROWS];
        for (uint r = 0u; r < ROWS; ++r)
          weight[r] = subgroupShuffle(p[r], group_first_lane + k);
        for (uint j = 0u; j < LANE_CHUNKS; ++j) {
          const CHUNK v_chunk = v_tile[(group_key + k) * ROW_CHUNKS + j * 8u + lane];
          for (uint r = 0u; r < ROWS; ++r) o[r][j] += weight[r] * v_chunk;
        }
      }
    }
    barrier();
  }

  for (uint r = 0u; r < ROWS; ++r) {
    // The one guard: a row that attended nothing has sum 0 and gives zeros.
    const float total = group8_sum(row_sum[r]);
    const uint row = first_row + r;
    if (align_Q || row < query_len) {
      for (uint j = 0u; j < LANE_CHUNKS; ++j) {
        const CHUNK value = total == 0.0 ? CHUNK(0.0) : o[r][j] / total;
        STORE_CHUNK(O, o_base + row * o_row_stride + CW * (j * 8u + lane), value);
      }
    }
  }
}
)glsl";

}  // namespace detail

// The portable prefill for head dim D (any multiple of 16 up to 512), I/O
// type T and mask type M (T: additive, u8: boolean; a variant without a mask
// is the additive one with has_mask false).
//
// Work split: a workgroup of 128 invocations takes BQ query rows of one
// (batch, head) and streams the keys through shared memory BK at a time, K
// and V converted to f32. The invocations form 16 groups of 8 lanes; a group
// owns ROWS query rows and each lane D/8 of their dims, so Q and the output
// accumulators stay in registers and every shared-memory read of a lane is
// contiguous with its neighbours'. Per 8 keys a lane computes partial dot
// products over its dims, a reduce-scatter inside the group gives each lane
// one key's score, the online softmax runs on those, and the probabilities
// are shuffled back to all lanes for O += P V. Only 8-lane groups are
// assumed, so the text is the same on 8-lane (lavapipe) and 32-lane (NVIDIA)
// subgroups.
template <int D, prefill_element T, prefill_mask_element<T> M = T>
struct prefill {
  static_assert(D >= 16 && D <= 512 && D % 16 == 0,
                "prefill: head_dim must be a multiple of 16 in [16, 512]");
  static constexpr prefill_geometry tiles = prefill_geometry_for(D);
  static_assert(tiles.shared_bytes <= targets::portable.shared_memory_bytes &&
                    tiles.shared_bytes <= targets::nvidia.shared_memory_bytes,
                "prefill: the K and V tiles must fit the shared memory of every target");

  static constexpr auto name = [] {
    if constexpr (std::same_as<M, u8>)
      return tessel::name("prefill", kind_name(scalar_traits<T>::kind), "d", D, "boolmask");
    else
      return tessel::name("prefill", kind_name(scalar_traits<T>::kind), "d", D);
  }();
  using params = PrefillParams;
  using bindings = tessel::bindings<in<"Q", T>, in<"K", T>, in<"V", T>, out<"O", T>, in<"mask", M>,
                                    in<"blk", u8>>;
  // The seed's constant ids (KERNELS.md 3.1).
  using constants = tessel::constants<spec<"align_Q", bool, 200>, spec<"align_K", bool, 201>,
                                      spec<"has_mask", bool, 300>, spec<"do_causal", bool, 301>,
                                      spec<"has_blk", bool, 303>>;
  using geometry =
      tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                       constant<"BQ", tiles.query_rows>, constant<"BK", tiles.keys>,
                       constant<"ROWS", tiles.rows_per_group>, constant<"CW", tiles.chunk_width>,
                       constant<"ROW_CHUNKS", D / tiles.chunk_width>,
                       constant<"LANE_CHUNKS", D / tiles.chunk_width / prefill_group_lanes>,
                       constant<"TILE_CHUNKS", tiles.keys * D / tiles.chunk_width>,
                       constant<"THREADS", prefill_threads>>;
  using workgroup = tessel::workgroup<prefill_threads>;
  using snippets =
      std::conditional_t<std::same_as<T, bf16>,
                         snippet_list<snippets::bf16_conversion, snippets::group8_reductions>,
                         snippet_list<snippets::group8_reductions>>;
  static constexpr std::uint32_t shared_bytes(const target&) { return tiles.shared_bytes; }
  static std::string body(const target&) {
    return detail::element_access_glsl<T>(tiles.chunk_width) +
           std::string(detail::prefill_constants) + detail::prefill_mask_glsl<T, M>() +
           std::string(detail::prefill_main);
  }
};

// The head dims shipped as variants, each with f16 and bf16 I/O and an
// additive or boolean mask.
template <int D>
using prefill_variants_d =
    variant_list<prefill<D, f16>, prefill<D, f16, u8>, prefill<D, bf16>, prefill<D, bf16, u8>>;
using prefill_variants = join_variants_t<prefill_variants_d<64>, prefill_variants_d<128>,
                                         prefill_variants_d<256>, prefill_variants_d<512>>;

// --- the host op -------------------------------------------------------------

// Records variant D of the prefill (for a head dim not in the shipped list:
// instantiating prefill<D, ...> is all it takes). `mask` and `blk` may be
// null; blk (prefill_blk.hpp) needs the mask it was computed from.
// Everything is validated before anything is recorded.
template <int D, prefill_element T, prefill_mask_element<T> M = T>
void record_prefill_variant(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                            const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o,
                            const vk::buffer<M>* mask = nullptr,
                            const vk::buffer<u8>* blk = nullptr) {
  constexpr std::string_view op = "prefill";
  require(p.head_dim == static_cast<std::uint32_t>(D), op, "head_dim", p.head_dim,
          "must equal the variant's " + std::to_string(D));
  validate_prefill(
      p, {q.size(), k.size(), v.size(), o.size(), detail::size_if(mask), detail::size_if(blk)});
  require(rec.target().subgroup_size >= prefill_group_lanes, op, "device subgroup size",
          rec.target().subgroup_size, "must be >= 8");
  const PrefillParams params = prefill_params(p);
  constexpr prefill_geometry g = prefill_geometry_for(D);
  const vk::spec_value spec[] = {{200, p.query_len % g.query_rows == 0 ? 1u : 0u},
                                 {201, p.key_len % g.keys == 0 ? 1u : 0u},
                                 {300, mask ? 1u : 0u},
                                 {301, p.causal ? 1u : 0u},
                                 {303, blk ? 1u : 0u}};
  const extent3 grid{static_cast<std::uint32_t>(params.num_query_tiles), p.num_heads, p.batch};
  rec.dispatch<prefill<D, T, M>>(params, spec, grid, q, k, v, o, mask, blk);
}

// Which kernel record_prefill runs: `automatic` takes the cooperative-matrix
// one where prefill_coopmat_supported says the device runs it, else the
// portable one; the others force a kernel (tests, benchmarks). Forcing
// `coopmat` on a device without it is an error, raised before recording.
enum class prefill_path : std::uint8_t { automatic, portable, coopmat };

// The kernel `path` resolves to on target t for head dim `head_dim`.
inline prefill_path resolve_prefill_path(prefill_path path, const target& t,
                                         std::uint32_t head_dim) {
  if (path != prefill_path::automatic) return path;
  return prefill_coopmat_supported(t, head_dim) ? prefill_path::coopmat : prefill_path::portable;
}

// Records the prefill of `p` for the shipped head dims (64, 128, 256, 512):
// without a mask, with an additive (T) or boolean (u8) mask, and with the
// mask's tile classes (record_prefill_blk) to skip blocked tiles. The tile
// classes are the same for both kernels.
template <prefill_element T>
void record_prefill(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                    const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o,
                    prefill_path path = prefill_path::automatic) {
  const bool coopmat =
      resolve_prefill_path(path, rec.target(), p.head_dim) == prefill_path::coopmat;
  with_head_dim<64, 128, 256, 512>("prefill", p.head_dim, [&](auto d) {
    if (coopmat)
      record_prefill_coopmat_variant<decltype(d)::value, T>(rec, p, q, k, v, o);
    else
      record_prefill_variant<decltype(d)::value, T>(rec, p, q, k, v, o);
  });
}

template <prefill_element T, prefill_mask_element<T> M>
void record_prefill(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                    const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o,
                    const vk::buffer<M>& mask, const vk::buffer<u8>* blk = nullptr,
                    prefill_path path = prefill_path::automatic) {
  const bool coopmat =
      resolve_prefill_path(path, rec.target(), p.head_dim) == prefill_path::coopmat;
  with_head_dim<64, 128, 256, 512>("prefill", p.head_dim, [&](auto d) {
    if (coopmat)
      record_prefill_coopmat_variant<decltype(d)::value, T, M>(rec, p, q, k, v, o, &mask, blk);
    else
      record_prefill_variant<decltype(d)::value, T, M>(rec, p, q, k, v, o, &mask, blk);
  });
}

}  // namespace tessel::kernels
