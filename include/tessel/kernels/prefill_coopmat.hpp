// The prefill on NVIDIA's matrix units (VK_NV_cooperative_matrix, issue 7):
// the same op as the portable kernel (prefill.hpp), with Q K^T and P V done
// as f16 x f16 -> f32 products of 16x16 tiles. Same parameter block, problem,
// validation, masks, causal rule, GQA, layouts and tile classes
// (prefill_shared.hpp, prefill_blk.hpp); record_prefill (prefill.hpp) runs
// this kernel wherever prefill_coopmat_supported says the device can.
//
// Precision. The matrix units take f16 operands, so
//   - Q, K and V are converted to f16 while they are staged in shared
//     memory. f16 inputs are unchanged. bf16 inputs (8 significant bits) are
//     exact in f16 from 2^-14 to 65504; smaller magnitudes lose bits (f16
//     subnormals, 2^-24 apart) and finite values or infinities beyond 65504
//     are clamped to +-65504 (NaN stays NaN). So bf16 Q, K, V must lie within
//     f16's range, |x| <= 65504, for the result to follow the reference.
//   - the probabilities P = exp2(s - max) in [0, 1] are rounded to f16 before
//     P V. The row sum that divides the output is summed from the same
//     rounded values, so the output is an exact weighted average of V rows
//     whose normalized weights are each off by at most 2^-10 relative
//     (half an f16 ulp from the probability, as much from the sum):
//     |error| <= 2^-10 * max |v| beyond the output's rounding
//     (prefill_coopmat_probability_error). The exponents are taken against
//     a running max that may lag the true one by up to RESCALE_SLACK (so P
//     lies in [0, 2^8], still rounded to f16's 11 bits; the sum is >= 1).
// Scores, the softmax and the accumulators are f32, as in the portable kernel.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/kernels/prefill_shared.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// --- geometry ----------------------------------------------------------------

// The kernel's lane mapping assumes 32-lane subgroups (NVIDIA's).
inline constexpr std::uint32_t coopmat_prefill_lanes = 32;
// The matrix shape used: 16x16x16, f16 x f16 -> f32.
inline constexpr std::uint32_t coopmat_prefill_tile = 16;

// `subgroups` subgroups (4 or 8) share the work of a workgroup as
// `subgroups / split` groups of 16 * row_blocks query rows, each row group's
// head dim split among `split` subgroups (each holds Q and O for 16 *
// row_blocks rows x D / split dims in matrix registers); `keys` keys per
// K/V tile in shared memory. Two row blocks per subgroup use each K and V
// fragment read from shared memory twice. `prefetch`: the next tile's K
// (and the current tile's V) are loaded into registers while the current
// tile's products run, at the cost of registers, instead of loading K and V
// together between tiles. `one_kv_buffer` (with prefetch): V is stored over
// K once every subgroup is done with the scores and K over V after P V, so
// K and V take half the shared memory, at the cost of workgroup barriers
// where a row group of one subgroup needs only subgroup barriers.
// `register_softmax` (split 1): scores, softmax and the O rescale stay in
// matrix registers where the device lays fragments out as NVIDIA's mma
// accumulators (checked in the kernel; elsewhere it takes the shared-memory
// path).
struct coopmat_prefill_tiles {
  std::uint32_t split = 1;
  std::uint32_t keys = 16;
  std::uint32_t subgroups = 4;
  bool prefetch = false;
  std::uint32_t row_blocks = 1;
  bool one_kv_buffer = false;
  bool register_softmax = false;
  friend constexpr bool operator==(const coopmat_prefill_tiles&,
                                   const coopmat_prefill_tiles&) = default;
};

// Shared memory of a tile shape: K and V tiles (or one of them) as f16 with
// rows padded by 8 halves (16 bytes, against bank conflicts), and per
// subgroup 16 * row_blocks rows of f32 scores (padded by 4) and of f16
// probabilities (padded by 8).
constexpr std::uint32_t coopmat_prefill_shared_bytes(std::uint32_t head_dim,
                                                     coopmat_prefill_tiles t) {
  const std::uint32_t rows = coopmat_prefill_tile * t.row_blocks;
  const std::uint32_t kv = (t.one_kv_buffer ? 1 : 2) * t.keys * (head_dim + 8) * 2;
  const std::uint32_t scores = t.subgroups * rows * (t.keys + 4) * 4;
  const std::uint32_t probabilities = t.subgroups * rows * (t.keys + 8) * 2;
  return kv + scores + probabilities;
}

// The head dims of the issue's shapes take the fastest tiles of
// bench/prefill_check --sweep on the H100 (docs/perf/prefill_coopmat.md).
// Others: at most 128 dims per subgroup, so Q (8 f16 fragments) and O (8
// f32 fragments) stay in registers; the most keys per tile (64, 32 or 16)
// that fit NVIDIA's 48 KiB of shared memory.
constexpr coopmat_prefill_tiles coopmat_prefill_tiles_for(std::uint32_t head_dim) {
  if (head_dim == 64)
    return {.split = 1, .keys = 64, .subgroups = 4, .prefetch = true, .register_softmax = true};
  if (head_dim == 128)
    return {.split = 1, .keys = 32, .subgroups = 4, .prefetch = true, .row_blocks = 2};
  if (head_dim == 256)
    return {.split = 2, .keys = 32, .subgroups = 8, .prefetch = true, .one_kv_buffer = true};
  if (head_dim == 512)
    return {.split = 2, .keys = 16, .subgroups = 8, .prefetch = true, .one_kv_buffer = true};
  coopmat_prefill_tiles t;
  t.split = head_dim <= 128 ? 1 : head_dim <= 256 ? 2 : 4;
  for (std::uint32_t keys : {64u, 32u, 16u}) {
    t.keys = keys;
    if (coopmat_prefill_shared_bytes(head_dim, t) <= targets::nvidia.shared_memory_bytes) break;
  }
  return t;
}

// The error the f16 probabilities add to the output (see the top of this
// file): each normalized weight p_j / sum p is off by at most 2^-10
// relative (2^-11 from p_j, 2^-11 from the sum), so the weighted average of
// V rows by at most 2^-10 * max |v|.
inline double prefill_coopmat_probability_error(double max_abs_v) {
  return std::ldexp(max_abs_v, -10);
}

// Whether a device (its target) runs the cooperative-matrix prefill: NV
// cooperative matrices with the 16x16x16 f16 x f16 -> f32 shape, 32-lane
// subgroups, and the shared memory of head dim `head_dim`'s tiles.
inline bool prefill_coopmat_supported(const target& t, std::uint32_t head_dim) {
  if (!has(t.features, feature::cooperative_matrix_nv)) return false;
  if (t.subgroup_size != coopmat_prefill_lanes) return false;
  const auto* end = t.coopmat_shapes.begin() + t.coopmat_shape_count;
  const bool has_shape = std::any_of(t.coopmat_shapes.begin(), end, [](const coopmat_shape& s) {
    return s.m == 16 && s.n == 16 && s.k == 16 && s.a == scalar_kind::f16 &&
           s.b == scalar_kind::f16 && s.c == scalar_kind::f32 && s.result == scalar_kind::f32;
  });
  return has_shape && coopmat_prefill_shared_bytes(head_dim, coopmat_prefill_tiles_for(head_dim)) <=
                          t.shared_memory_bytes;
}

// --- the kernel --------------------------------------------------------------

namespace detail {

// stage(raw): 8 consecutive elements of T (one 16-byte load) as 8 f16.
template <prefill_element T>
std::string coopmat_staging_glsl() {
  if constexpr (std::same_as<T, f16>) {
    return "uvec4 stage(uvec4 raw) { return raw; }\n";
  } else {
    return R"glsl(
// Two bf16 to two f16, clamped to f16's finite range (NaN stays NaN).
uint bf16x2_to_f16x2(uint pair) {
  const vec2 x = vec2(uintBitsToFloat(pair << 16), uintBitsToFloat(pair & 0xFFFF0000u));
  const vec2 clamped = clamp(x, vec2(-65504.0), vec2(65504.0));
  return packFloat2x16(f16vec2(mix(clamped, x, isnan(x))));
}
uvec4 stage(uvec4 raw) {
  return uvec4(bf16x2_to_f16x2(raw.x), bf16x2_to_f16x2(raw.y), bf16x2_to_f16x2(raw.z),
               bf16x2_to_f16x2(raw.w));
}
)glsl";
  }
}

// The kernel's main(); see prefill_coopmat below for the work split.
inline constexpr std::string_view prefill_coopmat_main = R"glsl(
#define F16_TILE fcoopmatNV<16, SUBGROUP_SCOPE, 16, 16>
#define F32_TILE fcoopmatNV<32, SUBGROUP_SCOPE, 16, 16>

// K (rows 0 .. BK-1) and V (from V_OFFSET: BK rows on, or over K with
// ONE_KV_BUFFER) tiles as f16, TILE_STRIDE 16-byte chunks per row; Q is
// staged here once before the first K tile.
shared uvec4 kv_tile[KV_ROWS * TILE_STRIDE];
// Per subgroup: ROWS rows of partial scores, also the scratch through which
// the O fragments are rescaled and stored.
shared float s_tile[SUBGROUPS * ROWS * S_STRIDE];
// Per subgroup: ROWS rows of probabilities.
shared float16_t p_tile[SUBGROUPS * ROWS * P_STRIDE];

// Shared-memory writes become visible to the subgroups that read them: the
// row group's SPLIT subgroups (all of them where K and V share a buffer, so
// that the barrier also orders the tile's reads and writes).
void sync_row_group() {
  if (SPLIT > 1u || ONE_KV_BUFFER) {
    barrier();
  } else {
    subgroupMemoryBarrierShared();
    subgroupBarrier();
  }
}

void sync_subgroup() {
  subgroupMemoryBarrierShared();
  subgroupBarrier();
}

// Loads this invocation's chunks of the tile of keys from `first_key` of K
// (values false) or V into `into`. Keys past key_len are zeros, never read:
// their scores are -inf, and 0 * V must stay 0.
void fetch(bool values, uint first_key, uint base, uint row_stride, out uvec4 into[STAGE_CHUNKS]) {
  [[unroll]] for (uint i = 0u; i < STAGE_CHUNKS; ++i) {
    const uint c = gl_LocalInvocationIndex + i * THREADS;
    const uint key = first_key + c / ROW_CHUNKS;
    into[i] = uvec4(0u);
    if (align_K || key < uint(params.key_len)) {
      const uint at = (base + key * row_stride) / 8u + c % ROW_CHUNKS;
      into[i] = values ? V_wide[at] : K_wide[at];
    }
  }
}

// Stores fetched chunks as f16 into the tile at `offset` (0: K, V_OFFSET: V).
void deposit(uint offset, uvec4 from[STAGE_CHUNKS]) {
  [[unroll]] for (uint i = 0u; i < STAGE_CHUNKS; ++i) {
    const uint c = gl_LocalInvocationIndex + i * THREADS;
    kv_tile[offset + (c / ROW_CHUNKS) * TILE_STRIDE + c % ROW_CHUNKS] = stage(from[i]);
  }
}

// 0: every cell blocked, skip the tile; 2: every cell attended with bias 0,
// skip the mask; 1: mixed. Combined over the classifier's tiles (rows
// blk_first_row .. blk_end_row - 1 of plane blk_plane) that key tile
// `key_tile` covers; uniform over the workgroup.
uint tile_class_of(uint key_tile, uint blk_plane, uint blk_first_row, uint blk_end_row) {
  if (!has_blk) return 1u;
  const uint blk_key_tiles = uint(params.num_key_tiles);
  bool attended = false, plain = true;
  const uint blk_first_key = key_tile * (BK / BLK_KEYS);
  const uint blk_end_key = min(blk_first_key + BK / BLK_KEYS, blk_key_tiles);
  for (uint r = blk_first_row; r < blk_end_row; ++r)
    for (uint k = blk_first_key; k < blk_end_key; ++k) {
      const uint value = uint(blk[blk_plane + r * blk_key_tiles + k]);
      attended = attended || value != 0u;
      plain = plain && value == 2u;
    }
  return !attended ? 0u : plain ? 2u : 1u;
}

void main() {
  const float neg_inf = uintBitsToFloat(0xFF800000u);
  const uint query_tile = gl_WorkGroupID.x;
  const uint head = gl_WorkGroupID.y;
  const uint batch = gl_WorkGroupID.z;
  const uint kv_head = head / uint(params.gqa_factor);
  const uint query_len = uint(params.query_len);
  const uint key_len = uint(params.key_len);
  const uint query_offset = uint(params.query_offset);
  const uint tid = gl_LocalInvocationIndex;
  const uint subgroup = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  // Subgroup s takes rows ROWS * (s / SPLIT) .. +ROWS-1 of the tile (RB
  // blocks of 16) and dims DS * (s % SPLIT) .. +DS-1 of Q and O.
  const uint row_group = subgroup / SPLIT;
  const uint first_dim = (subgroup % SPLIT) * DS;
  const uint first_row = query_tile * BQ + row_group * ROWS;
  // The softmax runs on ROW_LANES (32 / ROWS: 2 or 1) lanes per row, each on
  // every ROW_LANES-th key of the tile, starting ROW_LANES keys later in
  // each next 8 rows: with rows S_STRIDE = 4 mod 8 words apart, the 32 lanes
  // then read 32 distinct banks of the scores.
  const uint softmax_row = lane / ROW_LANES;
  const uint first_col = lane % ROW_LANES + ROW_LANES * (softmax_row >> 3u);
  const uint row = first_row + softmax_row;

  // Offsets are 32-bit (the host checks every buffer's element count fits)
  // and multiples of 8 elements (D is a multiple of 16), so rows are read in
  // 16-byte chunks.
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

  // Q to matrix registers through shared memory, KV_ROWS rows at a time;
  // rows past query_len are zero and never stored. The softmax scale is
  // applied to the f32 scores. q[RB * QF]: block b, fragment f at b * QF + f.
  F16_TILE q[RB * QF];
  for (uint first_staged = 0u; first_staged < BQ; first_staged += KV_ROWS) {
    const uint staged_rows = min(KV_ROWS, BQ - first_staged);
    for (uint c = tid; c < staged_rows * ROW_CHUNKS; c += THREADS) {
      const uint r = query_tile * BQ + first_staged + c / ROW_CHUNKS;
      uvec4 chunk = uvec4(0u);
      if (align_Q || r < query_len)
        chunk = stage(Q_wide[(q_base + r * q_row_stride) / 8u + c % ROW_CHUNKS]);
      kv_tile[(c / ROW_CHUNKS) * TILE_STRIDE + c % ROW_CHUNKS] = chunk;
    }
    barrier();
    [[unroll]] for (uint b = 0u; b < RB; ++b) {
      const uint block_row = row_group * ROWS + 16u * b;
      if (block_row >= first_staged && block_row - first_staged < staged_rows)
        [[unroll]] for (uint f = 0u; f < QF; ++f)
          coopMatLoadNV(q[b * QF + f], kv_tile,
                        (block_row - first_staged) * TILE_STRIDE + (first_dim + 16u * f) / 8u,
                        TILE_STRIDE, false);
    }
    barrier();
  }

  F32_TILE o[RB * QF];
  [[unroll]] for (uint f = 0u; f < RB * QF; ++f) o[f] = F32_TILE(0.0);
  const float q_scale = params.scale * LOG2E;
  // The max the exponents are taken against; it moves only when a tile's
  // max exceeds it by more than RESCALE_SLACK, so O is rescaled a few times
  // per row rather than whenever the max rises.
  float row_max = MAX_SENTINEL;
  float row_sum = 0.0;  // this lane's share of the row; the shares are added at the end

  // Causal: no row of this tile attends a key past its last row's position.
  uint tile_end = (key_len + BK - 1u) / BK;
  if (do_causal) {
    const uint last_row = min(query_tile * BQ + BQ, query_len) - 1u;
    tile_end = min(tile_end, (last_row + query_offset) / BK + 1u);
  }
  // The tile classes are laid out in the portable kernel's tiles (BLK_ROWS x
  // BLK_KEYS, params.num_query_tiles x params.num_key_tiles per plane), of
  // which this kernel's tiles are whole multiples. A rank-4 mask has one
  // plane per (batch, head).
  const uint blk_query_tiles = uint(params.num_query_tiles);
  const bool mask_broadcast = params.mask_strides[0] == 0 && params.mask_strides[1] == 0;
  const uint blk_plane = (mask_broadcast ? 0u : batch * uint(params.num_heads) + head) *
                         blk_query_tiles * uint(params.num_key_tiles);
  const uint blk_first_row = query_tile * (BQ / BLK_ROWS);
  const uint blk_end_row = min(blk_first_row + BQ / BLK_ROWS, blk_query_tiles);

  const uint s_base = subgroup * ROWS * S_STRIDE;
  const uint p_base = subgroup * ROWS * P_STRIDE;

  // REGISTER_SOFTMAX: where the 16x16 f32 fragments lay out as NVIDIA's
  // mma accumulators (element e of lane l in row l / 4 or l / 4 + 8, so the
  // four lanes of a quad hold two whole rows), the softmax runs on the
  // score fragments in registers and their f16 conversion is P. The layout
  // is read from a fragment loaded from the row-major indices 0 .. 255;
  // elsewhere the scores go through shared memory.
  uint element_row[8], element_col[8];
  bool quad_layout = false;
  if (REGISTER_SOFTMAX) {
    [[unroll]] for (uint e = 0u; e < 8u; ++e)
      s_tile[s_base + lane + 32u * e] = float(lane + 32u * e);
    sync_subgroup();
    F32_TILE indices;
    coopMatLoadNV(indices, s_tile, s_base, 16u, false);
    bool matches = indices.length() == 8;
    [[unroll]] for (uint e = 0u; e < 8u; ++e) {
      const uint at = matches ? uint(indices[e]) : 0u;
      element_row[e] = at / 16u;
      element_col[e] = at % 16u;
      matches = matches && element_row[e] % 8u == lane >> 2u;
    }
    quad_layout = subgroupMin(matches ? 1u : 0u) == 1u;
    sync_subgroup();
  }
  // The register softmax's statistics: per row block, the rows lane / 4
  // (lo) and lane / 4 + 8 (hi); the sums are this lane's share of its quad.
  float max_lo[RB], max_hi[RB], sum_lo[RB], sum_hi[RB];
  [[unroll]] for (uint b = 0u; b < RB; ++b) {
    max_lo[b] = MAX_SENTINEL;
    max_hi[b] = MAX_SENTINEL;
    sum_lo[b] = 0.0;
    sum_hi[b] = 0.0;
  }

  // An invocation's share of a K or V tile as loaded from memory.
  uvec4 staged[STAGE_CHUNKS];
  uvec4 staged_v[STAGE_CHUNKS];

  // The first tile with a cell attended.
  uint key_tile = 0u;
  uint tile_class = 0u;
  for (; key_tile < tile_end; ++key_tile) {
    tile_class = tile_class_of(key_tile, blk_plane, blk_first_row, blk_end_row);
    if (tile_class != 0u) break;
  }
  if (PREFETCH && key_tile < tile_end) {
    fetch(false, key_tile * BK, k_base, k_row_stride, staged);
    deposit(0u, staged);
  }

  while (key_tile < tile_end) {
    // PREFETCH: K is in shared memory, V's loads are in flight during the
    // scores. Else both are loaded and stored here.
    const uint first_key = key_tile * BK;
    if (PREFETCH) {
      fetch(true, first_key, v_base, v_row_stride, staged);
    } else {
      fetch(false, first_key, k_base, k_row_stride, staged);
      fetch(true, first_key, v_base, v_row_stride, staged_v);
      deposit(0u, staged);
      deposit(V_OFFSET, staged_v);
    }
    barrier();

    const bool add_mask = has_mask && tile_class == 1u;
    F16_TILE p[RB * KF];
    if (quad_layout) {
      // Scores in registers: s[b * KF + kb] is row block b, keys 16 kb ..
      F32_TILE s[RB * KF];
      [[unroll]] for (uint i = 0u; i < RB * KF; ++i) s[i] = F32_TILE(0.0);
      [[unroll]] for (uint kb = 0u; kb < KF; ++kb)
        [[unroll]] for (uint f = 0u; f < QF; ++f) {
          F16_TILE k_t;
          coopMatLoadNV(k_t, kv_tile, kb * 16u * TILE_STRIDE + (first_dim + 16u * f) / 8u,
                        TILE_STRIDE, true);
          [[unroll]] for (uint b = 0u; b < RB; ++b)
            s[b * KF + kb] = coopMatMulAddNV(q[b * QF + f], k_t, s[b * KF + kb]);
        }
      if (ONE_KV_BUFFER) {
        barrier();
        deposit(V_OFFSET, staged);
      }
      [[unroll]] for (uint b = 0u; b < RB; ++b) {
        float tile_lo = neg_inf, tile_hi = neg_inf;
        [[unroll]] for (uint kb = 0u; kb < KF; ++kb)
          [[unroll]] for (uint e = 0u; e < 8u; ++e) {
            const uint r = first_row + 16u * b + element_row[e];
            const uint key = first_key + 16u * kb + element_col[e];
            float x = s[b * KF + kb][e] * q_scale;
            if (!align_K && key >= key_len) {
              x = neg_inf;
            } else {
              if (do_causal && key > r + query_offset) x = neg_inf;
              if (add_mask && (align_Q || r < query_len))
                x = masked_score(x, mask_base + r * mask_row_stride + key);
            }
            s[b * KF + kb][e] = x;
            if (element_row[e] < 8u) {
              tile_lo = max(tile_lo, x);
            } else {
              tile_hi = max(tile_hi, x);
            }
          }
        tile_lo = max(tile_lo, subgroupShuffleXor(tile_lo, 1u));
        tile_lo = max(tile_lo, subgroupShuffleXor(tile_lo, 2u));
        tile_hi = max(tile_hi, subgroupShuffleXor(tile_hi, 1u));
        tile_hi = max(tile_hi, subgroupShuffleXor(tile_hi, 2u));
        float correction_lo = 1.0, correction_hi = 1.0;
        if (tile_lo > max_lo[b] + RESCALE_SLACK) {
          if (max_lo[b] != MAX_SENTINEL) correction_lo = exp2(max_lo[b] - tile_lo);
          max_lo[b] = tile_lo;
        }
        if (tile_hi > max_hi[b] + RESCALE_SLACK) {
          if (max_hi[b] != MAX_SENTINEL) correction_hi = exp2(max_hi[b] - tile_hi);
          max_hi[b] = tile_hi;
        }
        float tile_sum_lo = 0.0, tile_sum_hi = 0.0;
        [[unroll]] for (uint kb = 0u; kb < KF; ++kb) {
          [[unroll]] for (uint e = 0u; e < 8u; ++e) {
            const bool lo = element_row[e] < 8u;
            const float row_max_there = lo ? max_lo[b] : max_hi[b];
            const float pr = float(float16_t(exp2(s[b * KF + kb][e] - row_max_there)));
            s[b * KF + kb][e] = pr;
            if (lo) {
              tile_sum_lo += pr;
            } else {
              tile_sum_hi += pr;
            }
          }
          p[b * KF + kb] = F16_TILE(s[b * KF + kb]);
        }
        sum_lo[b] = sum_lo[b] * correction_lo + tile_sum_lo;
        sum_hi[b] = sum_hi[b] * correction_hi + tile_sum_hi;
        if (subgroupMin(min(correction_lo, correction_hi)) < 1.0)
          [[unroll]] for (uint f = 0u; f < QF; ++f)
            [[unroll]] for (uint e = 0u; e < 8u; ++e)
              o[b * QF + f][e] *= element_row[e] < 8u ? correction_lo : correction_hi;
      }
      // ONE_KV_BUFFER: V visible.
      if (ONE_KV_BUFFER) barrier();
    } else {
      // Scores over this subgroup's dims: S = Q K^T, K^T read column-major,
      // each K fragment used by every row block.
      [[unroll]] for (uint kb = 0u; kb < KF; ++kb) {
        F32_TILE s[RB];
        [[unroll]] for (uint b = 0u; b < RB; ++b) s[b] = F32_TILE(0.0);
        [[unroll]] for (uint f = 0u; f < QF; ++f) {
          F16_TILE k_t;
          coopMatLoadNV(k_t, kv_tile, kb * 16u * TILE_STRIDE + (first_dim + 16u * f) / 8u,
                        TILE_STRIDE, true);
          [[unroll]] for (uint b = 0u; b < RB; ++b)
            s[b] = coopMatMulAddNV(q[b * QF + f], k_t, s[b]);
        }
        [[unroll]] for (uint b = 0u; b < RB; ++b)
          coopMatStoreNV(s[b], s_tile, s_base + 16u * b * S_STRIDE + 16u * kb, S_STRIDE, false);
      }
      sync_row_group();
      // ONE_KV_BUFFER: every subgroup is done with K; V over it, made visible
      // by the barrier after the softmax.
      if (ONE_KV_BUFFER) deposit(V_OFFSET, staged);

      // Online softmax, base 2: the row group's partial scores summed, scaled
      // and masked; every subgroup of the row group keeps the same statistics.
      float score[BK / ROW_LANES];
      float tile_max = neg_inf;
      [[unroll]] for (uint j = 0u; j < BK / ROW_LANES; ++j) {
        const uint col = (first_col + ROW_LANES * j) % BK;
        const uint key = first_key + col;
        float sum = 0.0;
        [[unroll]] for (uint part = 0u; part < SPLIT; ++part)
          sum += s_tile[((row_group * SPLIT + part) * ROWS + softmax_row) * S_STRIDE + col];
        sum *= q_scale;
        if (!align_K && key >= key_len) {
          sum = neg_inf;
        } else {
          if (do_causal && key > row + query_offset) sum = neg_inf;
          if (add_mask && (align_Q || row < query_len))
            sum = masked_score(sum, mask_base + row * mask_row_stride + key);
        }
        score[j] = sum;
        tile_max = max(tile_max, sum);
      }
      if (ROW_LANES == 2u) tile_max = max(tile_max, subgroupShuffleXor(tile_max, 1u));
      // A row that has attended nothing yet (max still the sentinel) has O = 0
      // and sum 0: nothing to rescale.
      float correction = 1.0;
      if (tile_max > row_max + RESCALE_SLACK) {
        if (row_max != MAX_SENTINEL) correction = exp2(row_max - tile_max);
        row_max = tile_max;
      }
      // The sum is taken of the f16 probabilities P V multiplies.
      float tile_sum = 0.0;
      [[unroll]] for (uint j = 0u; j < BK / ROW_LANES; ++j) {
        const float16_t p = float16_t(exp2(score[j] - row_max));
        tile_sum += float(p);
        p_tile[p_base + softmax_row * P_STRIDE + (first_col + ROW_LANES * j) % BK] = p;
      }
      row_sum = row_sum * correction + tile_sum;
      // Also: every subgroup of the row group is done reading the scores, so
      // its own may be overwritten below.
      sync_row_group();

      // Rows whose max moved: O *= correction. A fragment's element order is
      // opaque, so each goes through this subgroup's score scratch, row-major:
      // element lane + 32 e of block b sits in row 16 b + lane / 16 + 2 e.
      if (subgroupMin(correction) < 1.0) {
        [[unroll]] for (uint b = 0u; b < RB; ++b) {
          float row_scale[8];
          [[unroll]] for (uint e = 0u; e < 8u; ++e)
            row_scale[e] =
                subgroupShuffle(correction, ROW_LANES * (16u * b + (lane >> 4u) + 2u * e));
          [[unroll]] for (uint f = 0u; f < QF; ++f) {
            coopMatStoreNV(o[b * QF + f], s_tile, s_base, 16u, false);
            sync_subgroup();
            [[unroll]] for (uint e = 0u; e < 8u; ++e)
              s_tile[s_base + lane + 32u * e] *= row_scale[e];
            sync_subgroup();
            coopMatLoadNV(o[b * QF + f], s_tile, s_base, 16u, false);
            sync_subgroup();
          }
        }
      }
      [[unroll]] for (uint b = 0u; b < RB; ++b)
        [[unroll]] for (uint kb = 0u; kb < KF; ++kb)
          coopMatLoadNV(p[b * KF + kb], p_tile, p_base + 16u * b * P_STRIDE + 16u * kb, P_STRIDE,
                        false);
    }

    // The next tile with a cell attended.
    uint next_tile = key_tile + 1u;
    uint next_class = 0u;
    for (; next_tile < tile_end; ++next_tile) {
      next_class = tile_class_of(next_tile, blk_plane, blk_first_row, blk_end_row);
      if (next_class != 0u) break;
    }
    // PREFETCH: the next K's loads in flight during P V; with two buffers V
    // goes to shared memory first, and the barrier makes it visible and
    // frees the K tile.
    if (PREFETCH && !ONE_KV_BUFFER) deposit(V_OFFSET, staged);
    if (PREFETCH && next_tile < tile_end)
      fetch(false, next_tile * BK, k_base, k_row_stride, staged);
    if (PREFETCH && !ONE_KV_BUFFER) barrier();

    // O += P V, each V fragment used by every row block.
    [[unroll]] for (uint f = 0u; f < QF; ++f)
      [[unroll]] for (uint kb = 0u; kb < KF; ++kb) {
        F16_TILE v_t;
        coopMatLoadNV(v_t, kv_tile, V_OFFSET + kb * 16u * TILE_STRIDE + (first_dim + 16u * f) / 8u,
                      TILE_STRIDE, false);
        [[unroll]] for (uint b = 0u; b < RB; ++b)
          o[b * QF + f] = coopMatMulAddNV(p[b * KF + kb], v_t, o[b * QF + f]);
      }
    // PREFETCH: the next K to shared memory (the barrier at the top of the
    // loop makes it visible and frees V), with one buffer once every
    // subgroup is done with V. Else every subgroup is done with K and V
    // before the next tile overwrites them.
    if (!PREFETCH || ONE_KV_BUFFER) barrier();
    if (PREFETCH && next_tile < tile_end) deposit(0u, staged);
    key_tile = next_tile;
    tile_class = next_class;
  }

  // O / row sum, row-major through the scratch. The one guard: a row that
  // attended nothing has sum 0 and gives zeros.
  // With the register softmax O is divided in registers first.
  const float total = ROW_LANES == 2u ? row_sum + subgroupShuffleXor(row_sum, 1u) : row_sum;
  [[unroll]] for (uint b = 0u; b < RB; ++b) {
    float row_total[8];
    if (quad_layout) {
      float total_lo = sum_lo[b] + subgroupShuffleXor(sum_lo[b], 1u);
      total_lo += subgroupShuffleXor(total_lo, 2u);
      float total_hi = sum_hi[b] + subgroupShuffleXor(sum_hi[b], 1u);
      total_hi += subgroupShuffleXor(total_hi, 2u);
      [[unroll]] for (uint f = 0u; f < QF; ++f)
        [[unroll]] for (uint e = 0u; e < 8u; ++e) {
          const float t = element_row[e] < 8u ? total_lo : total_hi;
          o[b * QF + f][e] = t == 0.0 ? 0.0 : o[b * QF + f][e] / t;
        }
      [[unroll]] for (uint e = 0u; e < 8u; ++e) row_total[e] = 1.0;
    } else {
      [[unroll]] for (uint e = 0u; e < 8u; ++e)
        row_total[e] = subgroupShuffle(total, ROW_LANES * (16u * b + (lane >> 4u) + 2u * e));
    }
    [[unroll]] for (uint f = 0u; f < QF; ++f) {
      coopMatStoreNV(o[b * QF + f], s_tile, s_base, 16u, false);
      sync_subgroup();
      [[unroll]] for (uint e = 0u; e < 8u; ++e) {
        const uint i = lane + 32u * e;
        const uint r = first_row + 16u * b + i / 16u;
        if (align_Q || r < query_len) {
          const float value = row_total[e] == 0.0 ? 0.0 : s_tile[s_base + i] / row_total[e];
          O[o_base + r * o_row_stride + first_dim + 16u * f + i % 16u] = FLOAT_TO_ELEMENT(value);
        }
      }
      sync_subgroup();
    }
  }
}
)glsl";

}  // namespace detail

// The cooperative-matrix prefill for head dim D, I/O type T and mask type M
// (as prefill<D, T, M>), with tile shape Tiles.
//
// Work split: a workgroup of 4 or 8 32-lane subgroups takes BQ = 16 *
// row_blocks * subgroups / split query rows of one (batch, head); each
// subgroup holds Q and the O accumulators of 16 * row_blocks rows x D /
// split dims as 16x16 fragments. K and V tiles of BK keys are staged in
// shared memory as f16 with 16-byte loads (with `prefetch`, each one tile
// phase ahead in registers; with `one_kv_buffer`, V over K). Per tile each
// subgroup computes its partial scores S = Q K^T; with the register softmax
// they stay in fragments, else they go to shared memory, where the online
// softmax (one or two lanes per row) sums the row group's partials and
// writes the probabilities as f16. The accumulators are rescaled (in
// registers, or through shared memory) when a row's running max moved by
// more than RESCALE_SLACK, rarely, and O += P V. Fully masked tiles are
// skipped (causal bound, tile classes).
template <int D, prefill_element T, prefill_mask_element<T> M = T,
          coopmat_prefill_tiles Tiles = coopmat_prefill_tiles_for(D)>
struct prefill_coopmat {
  static constexpr int head_dim = D;
  static constexpr coopmat_prefill_tiles tiles = Tiles;
  static constexpr prefill_geometry classes = prefill_geometry_for(D);
  static constexpr std::uint32_t subgroup_rows = coopmat_prefill_tile * Tiles.row_blocks;
  static constexpr std::uint32_t query_rows = subgroup_rows * Tiles.subgroups / Tiles.split;
  static constexpr std::uint32_t kv_rows = (Tiles.one_kv_buffer ? 1 : 2) * Tiles.keys;
  static constexpr std::uint32_t threads = Tiles.subgroups * coopmat_prefill_lanes;
  static constexpr std::uint32_t dims_per_subgroup = D / Tiles.split;
  static_assert(D >= 16 && D <= 512 && D % 16 == 0,
                "prefill_coopmat: head_dim must be a multiple of 16 in [16, 512]");
  static_assert(Tiles.subgroups == 4 || Tiles.subgroups == 8,
                "prefill_coopmat: subgroups must be 4 or 8");
  static_assert(Tiles.split == 1 || Tiles.split == 2 || Tiles.split == 4,
                "prefill_coopmat: split must be 1, 2 or 4");
  static_assert(Tiles.row_blocks == 1 || Tiles.row_blocks == 2,
                "prefill_coopmat: row_blocks must be 1 or 2");
  static_assert(!Tiles.register_softmax || Tiles.split == 1,
                "prefill_coopmat: register_softmax needs split 1 (whole scores per subgroup)");
  static_assert(!Tiles.one_kv_buffer || Tiles.prefetch,
                "prefill_coopmat: one_kv_buffer needs prefetch (V waits in registers for K's "
                "buffer)");
  static_assert(Tiles.keys * (D / 8) % threads == 0,
                "prefill_coopmat: a K or V tile must be whole 16-byte chunks per invocation");
  static_assert(dims_per_subgroup % coopmat_prefill_tile == 0,
                "prefill_coopmat: each subgroup's dims must be whole 16-wide fragments");
  static_assert(Tiles.keys % coopmat_prefill_tile == 0 && Tiles.keys <= 64,
                "prefill_coopmat: keys per tile must be 16, 32, 48 or 64");
  static_assert(query_rows % classes.query_rows == 0 && Tiles.keys % classes.keys == 0,
                "prefill_coopmat: tiles must be whole multiples of the tile classes' tiles");
  static_assert(coopmat_prefill_shared_bytes(D, Tiles) <= targets::nvidia.shared_memory_bytes,
                "prefill_coopmat: the tiles must fit the NVIDIA target's shared memory");

  static constexpr auto name = [] {
    constexpr auto type = kind_name(scalar_traits<T>::kind);
    constexpr bool boolean = std::same_as<M, u8>;
    if constexpr (Tiles == coopmat_prefill_tiles_for(D)) {
      if constexpr (boolean)
        return tessel::name("prefill_coopmat", type, "d", D, "boolmask");
      else
        return tessel::name("prefill_coopmat", type, "d", D);
    } else {
      if constexpr (boolean)
        return tessel::name("prefill_coopmat", type, "d", D, "boolmask", "s", Tiles.split, "k",
                            Tiles.keys, "w", Tiles.subgroups, "pf", Tiles.prefetch, "r",
                            Tiles.row_blocks, "kv", Tiles.one_kv_buffer ? 1 : 2, "rs",
                            Tiles.register_softmax);
      else
        return tessel::name("prefill_coopmat", type, "d", D, "s", Tiles.split, "k", Tiles.keys, "w",
                            Tiles.subgroups, "pf", Tiles.prefetch, "r", Tiles.row_blocks, "kv",
                            Tiles.one_kv_buffer ? 1 : 2, "rs", Tiles.register_softmax);
    }
  }();
  using params = PrefillParams;
  using wide = vec<std::uint32_t, 4>;
  using bindings = tessel::bindings<in<"Q", T, wide>, in<"K", T, wide>, in<"V", T, wide>,
                                    out<"O", T>, in<"mask", M>, in<"blk", u8>>;
  // The portable kernel's constant ids (KERNELS.md 3.1).
  using constants = tessel::constants<spec<"align_Q", bool, 200>, spec<"align_K", bool, 201>,
                                      spec<"has_mask", bool, 300>, spec<"do_causal", bool, 301>,
                                      spec<"has_blk", bool, 303>>;
  using geometry = tessel::geometry<
      constant<"D", static_cast<std::uint32_t>(D)>, constant<"SPLIT", Tiles.split>,
      constant<"DS", dims_per_subgroup>, constant<"QF", dims_per_subgroup / coopmat_prefill_tile>,
      constant<"RB", Tiles.row_blocks>, constant<"ROWS", subgroup_rows>,
      constant<"ROW_LANES", coopmat_prefill_lanes / subgroup_rows>, constant<"BQ", query_rows>,
      constant<"BK", Tiles.keys>, constant<"KV_ROWS", kv_rows>,
      constant<"ONE_KV_BUFFER", Tiles.one_kv_buffer>,
      constant<"REGISTER_SOFTMAX", Tiles.register_softmax>,
      constant<"KF", Tiles.keys / coopmat_prefill_tile>,
      constant<"ROW_CHUNKS", static_cast<std::uint32_t>(D / 8)>,
      constant<"TILE_STRIDE", static_cast<std::uint32_t>((D + 8) / 8)>,
      constant<"V_OFFSET", Tiles.one_kv_buffer ? 0u : Tiles.keys*(D + 8) / 8>,
      constant<"S_STRIDE", Tiles.keys + 4>, constant<"P_STRIDE", Tiles.keys + 8>,
      constant<"BLK_ROWS", classes.query_rows>, constant<"BLK_KEYS", classes.keys>,
      constant<"SUBGROUPS", Tiles.subgroups>, constant<"THREADS", threads>,
      constant<"STAGE_CHUNKS", Tiles.keys*(D / 8) / threads>, constant<"PREFETCH", Tiles.prefetch>,
      constant<"RESCALE_SLACK", 8.0f>, constant<"SUBGROUP_SCOPE", 3>>;  // gl_ScopeSubgroup
  using workgroup = tessel::workgroup<coopmat_prefill_lanes, Tiles.subgroups>;
  static constexpr extension extensions =
      extension::cooperative_matrix_nv | extension::explicit_float16 | extension::subgroup_basic |
      extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;
  using snippets = std::conditional_t<std::same_as<T, bf16>,
                                      snippet_list<snippets::bf16_conversion>, snippet_list<>>;
  static constexpr std::uint32_t shared_bytes(const target&) {
    return coopmat_prefill_shared_bytes(D, Tiles);
  }
  static std::string body(const target&) {
    return detail::element_access_glsl<T>(4) + std::string(detail::prefill_constants) +
           detail::prefill_mask_glsl<T, M>() + detail::coopmat_staging_glsl<T>() +
           std::string(detail::prefill_coopmat_main);
  }
};

template <int D>
using prefill_coopmat_variants_d =
    variant_list<prefill_coopmat<D, f16>, prefill_coopmat<D, f16, u8>, prefill_coopmat<D, bf16>,
                 prefill_coopmat<D, bf16, u8>>;
using prefill_coopmat_variants =
    join_variants_t<prefill_coopmat_variants_d<64>, prefill_coopmat_variants_d<128>,
                    prefill_coopmat_variants_d<256>, prefill_coopmat_variants_d<512>>;

// --- the host op -------------------------------------------------------------

// Records the cooperative-matrix variant D of the prefill; arguments and
// validation as record_prefill_variant (prefill.hpp), plus the device check.
template <int D, prefill_element T, prefill_mask_element<T> M = T,
          coopmat_prefill_tiles Tiles = coopmat_prefill_tiles_for(D)>
void record_prefill_coopmat_variant(vk::recorder& rec, const prefill_problem& p,
                                    const vk::buffer<T>& q, const vk::buffer<T>& k,
                                    const vk::buffer<T>& v, const vk::buffer<T>& o,
                                    const vk::buffer<M>* mask = nullptr,
                                    const vk::buffer<u8>* blk = nullptr) {
  constexpr std::string_view op = "prefill";
  using kernel = prefill_coopmat<D, T, M, Tiles>;
  require(p.head_dim == static_cast<std::uint32_t>(D), op, "head_dim", p.head_dim,
          "must equal the variant's " + std::to_string(D));
  validate_prefill(
      p, {q.size(), k.size(), v.size(), o.size(), detail::size_if(mask), detail::size_if(blk)});
  require(prefill_coopmat_supported(rec.target(), D), op, "device", std::string(rec.target().name),
          "must have NV cooperative matrices of 16x16x16 f16 x f16 -> f32, 32-lane subgroups and " +
              std::to_string(kernel::shared_bytes(rec.target())) +
              " bytes of shared memory for the cooperative-matrix path");
  const PrefillParams params = prefill_params(p);
  const vk::spec_value spec[] = {{200, p.query_len % kernel::query_rows == 0 ? 1u : 0u},
                                 {201, p.key_len % Tiles.keys == 0 ? 1u : 0u},
                                 {300, mask ? 1u : 0u},
                                 {301, p.causal ? 1u : 0u},
                                 {303, blk ? 1u : 0u}};
  const extent3 grid{static_cast<std::uint32_t>(ceil_div(p.query_len, kernel::query_rows)),
                     p.num_heads, p.batch};
  rec.dispatch<kernel>(params, spec, grid, q, k, v, o, mask, blk);
}

}  // namespace tessel::kernels
