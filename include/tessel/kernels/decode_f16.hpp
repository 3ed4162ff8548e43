// Single-query decode attention over an f16 KV cache (KERNELS.md sections 7
// and 11.2): for each sequence b and query head h,
//   out[b, h] = softmax_j(s_j) V[b, h / G, slot(j)]   over the attended j,
//   s_j = scale * <Q[b, h], K[b, h / G, slot(j)]>      (softcap * tanh(s / softcap) when set)
// with G = num_heads / num_kv_heads query heads per KV head.
//
// Positions are logical: j = 0 is the oldest cached token and kv_seq_len - 1
// the query itself. A ring-buffer cache stores j in slot (ring_start + j) mod
// kv_capacity; a linear cache has ring_start = 0. The attended set is
// [window_start, kv_seq_len) with window_start = kv_seq_len - sliding_window
// for the sliding-window mask (when the cache is longer) and 0 otherwise; the
// kernel iterates exactly that range, so masked positions cost no reads.
//
// Work split: a workgroup owns one KV head, `heads_per_group` of its query
// heads (all G when they fit in registers: each K/V row is then read once for
// all of them) and one of NWG slices of the attended range. NWG = 1 writes
// the normalized output; NWG > 1 writes partials that decode_reduce merges.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// VecF16Params, 36 bytes (the seed's peer-port block).
struct VecF16Params {
  std::uint32_t num_heads;
  std::uint32_t num_kv_heads;
  std::uint32_t head_dim;
  std::uint32_t kv_seq_len;   // valid positions, > 0
  std::uint32_t kv_capacity;  // allocated positions per KV head (its stride), >= kv_seq_len
  float scale;
  std::uint32_t mask_type;       // decode_mask
  std::uint32_t sliding_window;  // window length for decode_mask::sliding_window
  std::uint32_t ring_start;      // slot of logical position 0 (the oldest entry)
};
TESSEL_PARAMS(VecF16Params, num_heads, num_kv_heads, head_dim, kv_seq_len, kv_capacity, scale,
              mask_type, sliding_window, ring_start);
static_assert(layout<VecF16Params>::size == 36);
static_assert(layout<VecF16Params>::matches_host);

// For one query at the newest position, none and causal attend the same keys
// (every cached token is in its past); both exist because callers pass the
// model's mask kind through.
enum class decode_mask : std::uint32_t { none = 0, causal = 1, sliding_window = 2 };

// Query heads one workgroup computes together, at most: their Q and output
// rows live in registers (2 * heads * D / 32 floats per lane on a 32-wide
// subgroup), so wide heads take fewer.
constexpr std::uint32_t max_heads_per_group(std::uint32_t head_dim) {
  return head_dim <= 256 ? 8 : head_dim <= 512 ? 4 : 2;
}

// Subgroups per workgroup: they split the workgroup's slice between them and
// merge through shared memory at the end.
inline constexpr int decode_subgroups = 4;

template <int D, int HEADS = 1, int NSG = decode_subgroups>
struct decode_f16 {
  static_assert(D >= 8 && D % 8 == 0, "decode_f16: head_dim must be a multiple of 8");
  static_assert(HEADS >= 1 && static_cast<std::uint32_t>(HEADS) <= max_heads_per_group(D),
                "decode_f16: too many query heads per workgroup for this head dim");
  static_assert(NSG >= 1 && NSG <= 16, "decode_f16: 1 to 16 subgroups per workgroup");
  static constexpr auto name = tessel::name("decode_f16", "d", D, "h", HEADS, "s", NSG);
  using params = VecF16Params;
  // K and V rows are read as uvec4: 8 halves per lane and load.
  using bindings = tessel::bindings<in<"q", float>, in<"keys", f16, vec<std::uint32_t, 4>>,
                                    in<"values", f16, vec<std::uint32_t, 4>>, out<"dst", float>>;
  using constants = tessel::constants<spec<"softcap", float, 0, 0.0f>>;
  // HEADS is compile-time so the per-head arrays stay in registers.
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                                    constant<"HEADS", static_cast<std::uint32_t>(HEADS)>,
                                    constant<"NSG", static_cast<std::uint32_t>(NSG)>,
                                    constant<"ROW_CHUNKS", D / 8u>>;
  using workgroup = tessel::workgroup<lanes{NSG}>;
  static constexpr extension extensions =
      extension::subgroup_basic | extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;
  static constexpr std::uint32_t shared_bytes(const target&) {
    return (HEADS * D + 2 * NSG * HEADS) * sizeof(float);
  }

  // Lanes that share one cache row: the largest power of two dividing the
  // row's 16-byte chunks, up to the subgroup. A subgroup reads SG / LPR rows
  // per step, each lane CPL chunks of its row.
  static constexpr std::uint32_t lanes_per_row(const target& t) {
    std::uint32_t lanes = 1;
    while (lanes * 2 <= t.subgroup_size && (D / 8) % (lanes * 2) == 0) lanes *= 2;
    return lanes;
  }

  // Rows whose loads a lane issues together: 8 chunks (128 bytes) in
  // flight per lane, within the row group.
  static constexpr std::uint32_t rows_per_batch(const target& t) {
    const std::uint32_t lpr = lanes_per_row(t), cpl = D / 8 / lpr;
    return std::min(lpr, std::max(1u, 8 / cpl));
  }

  // The per-head loops are unrolled where a lane's share of a row is small
  // enough for its arrays to live in registers (32-wide subgroups); narrow
  // subgroups (CPU drivers) keep the loops, which compile much faster.
  static constexpr bool unrolled(const target& t) { return D / lanes_per_row(t) <= 16; }

  static std::string body(const target& t) {
    return "const uint SG = " + std::to_string(t.subgroup_size) +
           "u;\nconst uint LPR = " + std::to_string(lanes_per_row(t)) +
           "u;\nconst uint RB = " + std::to_string(rows_per_batch(t)) + "u;\n#define UNROLL " +
           (unrolled(t) ? "[[unroll]]" : "") + "\n" + std::string(main_text);
  }

  static constexpr std::string_view main_text = R"glsl(const uint CPL = ROW_CHUNKS / LPR;
const uint RPS = SG / LPR;
const uint HEAD_FLOATS = CPL * 8u;  // floats of one head's row per lane
const float MAX_SENTINEL = -1.70141173e38;  // -FLT_MAX / 2: the running max never becomes -inf
const float NOT_ATTENDED = -3.40282347e38;  // below the sentinel: never raises the max

shared float merged[HEADS * D];
shared float subgroup_max[NSG * HEADS];
shared float subgroup_sum[NSG * HEADS];

float logit(float dot) {
  // |x| > 15 gives tanh(x) = +-1 in f32; the clamp keeps exp-based tanh
  // implementations away from inf / inf.
  return softcap > 0.0 ? softcap * tanh(clamp(dot / softcap, -15.0, 15.0)) : dot;
}

// Chunk c (8 halves) of the cache row holding logical position `position`.
uint chunk_index(uint cache_base, uint position, uint c) {
  uint slot = position + params.ring_start;
  if (slot >= params.kv_capacity) slot -= params.kv_capacity;
  return (cache_base + slot) * ROW_CHUNKS + c;
}

// The chunks of K (or V) this lane reads for the RB rows of a sub-block
// starting at logical position `first`; rows past the slice read its last
// row instead (no branch between the loads, so they are issued together;
// their weight is 0).
void load_sub_block(const bool from_values, uint cache_base, uint first, uint last, uint sublane,
                    out uvec4 packed[RB * CPL]) {
  UNROLL for (uint u = 0u; u < RB; ++u) {
    const uint position = min(first + u * RPS, last);
    UNROLL for (uint i = 0u; i < CPL; ++i) {
      const uint chunk = chunk_index(cache_base, position, sublane + LPR * i);
      packed[u * CPL + i] = from_values ? values_wide[chunk] : keys_wide[chunk];
    }
  }
}

void main() {
  const uint lane = gl_SubgroupInvocationID;
  const uint sg = gl_SubgroupID;
  const uint row_in_step = lane / LPR;
  const uint sublane = lane % LPR;
  const uint nwg = gl_NumWorkGroups.x;
  const uint slice = gl_WorkGroupID.x;
  const uint group_size = params.num_heads / params.num_kv_heads;
  const uint head_groups = group_size / HEADS;
  const uint kv_head = gl_WorkGroupID.y / head_groups;
  const uint first_head = kv_head * group_size + (gl_WorkGroupID.y % head_groups) * HEADS;
  const uint sequence = gl_WorkGroupID.z;
  const uint cache_base = (sequence * params.num_kv_heads + kv_head) * params.kv_capacity;

  // The attended logical range, cut into NWG slices of whole SG-blocks.
  const uint range_end = params.kv_seq_len;
  const uint range_begin = params.mask_type == 2u && range_end > params.sliding_window
                               ? range_end - params.sliding_window
                               : 0u;
  const uint blocks = (range_end - range_begin + SG - 1u) / SG;
  const uint blocks_per_slice = (blocks + nwg - 1u) / nwg;
  const uint slice_begin = min(range_end, range_begin + slice * blocks_per_slice * SG);
  const uint slice_end = min(range_end, slice_begin + blocks_per_slice * SG);

  // Lane-owned parts of each head's query (pre-scaled) and output rows:
  // element e of chunk sublane + LPR * i.
  const uint q_row = sequence * params.num_heads + first_head;
  float query[HEADS * HEAD_FLOATS];
  float acc[HEADS * HEAD_FLOATS];
  float running_max[HEADS];
  float running_sum[HEADS];
  UNROLL for (uint g = 0u; g < HEADS; ++g) {
    running_max[g] = MAX_SENTINEL;
    running_sum[g] = 0.0;
    UNROLL for (uint i = 0u; i < CPL; ++i)
      UNROLL for (uint e = 0u; e < 8u; ++e) {
        const uint at = (g * CPL + i) * 8u + e;
        query[at] = params.scale * q[(q_row + g) * D + (sublane + LPR * i) * 8u + e];
        acc[at] = 0.0;
      }
  }

  // Each block of SG positions is read in LPR steps of RPS rows; the score of
  // position block + s * RPS + r ends in lane r * LPR + s, so every lane owns
  // one position of the block for the softmax.
  for (uint block = slice_begin + sg * SG; block < slice_end; block += NSG * SG) {
    const uint last = slice_end - 1u;
    // Keys in sub-blocks of RB steps: the sub-block's loads are issued
    // together, each lane accumulates partial dots of its chunks, and a
    // reduce-scatter across the row group leaves lane `sublane` with the full
    // dot of step sub + sublane % RB: RB - 1 + log2(LPR / RB) shuffles for RB
    // rows instead of log2(LPR) per row.
    float score[HEADS];
    UNROLL for (uint sub = 0u; sub < LPR; sub += RB) {
      uvec4 packed[RB * CPL];
      load_sub_block(false, cache_base, block + sub * RPS + row_in_step, last, sublane, packed);
      float partial[HEADS * RB];
      UNROLL for (uint g = 0u; g < HEADS; ++g)
        UNROLL for (uint u = 0u; u < RB; ++u) {
          float dot = 0.0;
          UNROLL for (uint i = 0u; i < CPL; ++i) {
            const uvec4 k = packed[u * CPL + i];
            const uint at = (g * CPL + i) * 8u;
            const vec2 k01 = unpackHalf2x16(k.x), k23 = unpackHalf2x16(k.y);
            const vec2 k45 = unpackHalf2x16(k.z), k67 = unpackHalf2x16(k.w);
            dot = fma(query[at], k01.x, fma(query[at + 1u], k01.y, dot));
            dot = fma(query[at + 2u], k23.x, fma(query[at + 3u], k23.y, dot));
            dot = fma(query[at + 4u], k45.x, fma(query[at + 5u], k45.y, dot));
            dot = fma(query[at + 6u], k67.x, fma(query[at + 7u], k67.y, dot));
          }
          partial[g * RB + u] = dot;
        }
      UNROLL for (uint span = RB / 2u; span > 0u; span >>= 1) {
        const bool upper = (sublane & span) != 0u;
        UNROLL for (uint g = 0u; g < HEADS; ++g)
          UNROLL for (uint u = 0u; u < span; ++u) {
            const float low = partial[g * RB + u], high = partial[g * RB + u + span];
            partial[g * RB + u] = (upper ? high : low) + subgroupShuffleXor(upper ? low : high, span);
          }
      }
      UNROLL for (uint g = 0u; g < HEADS; ++g) {
        UNROLL for (uint d = RB; d < LPR; d <<= 1) partial[g * RB] += subgroupShuffleXor(partial[g * RB], d);
        if (sublane / RB == sub / RB) score[g] = partial[g * RB];
      }
    }

    const bool attended = block + sublane * RPS + row_in_step < slice_end;
    float weight[HEADS];
    UNROLL for (uint g = 0u; g < HEADS; ++g) {
      const float s = attended ? logit(score[g]) : NOT_ATTENDED;
      const float new_max = max(running_max[g], subgroupMax(s));
      const float rescale = exp(running_max[g] - new_max);
      weight[g] = attended ? exp(s - new_max) : 0.0;
      running_sum[g] = running_sum[g] * rescale + subgroupAdd(weight[g]);
      running_max[g] = new_max;
      UNROLL for (uint j = 0u; j < HEAD_FLOATS; ++j) acc[g * HEAD_FLOATS + j] *= rescale;
    }

    // Values in the same sub-blocks.
    UNROLL for (uint sub = 0u; sub < LPR; sub += RB) {
      uvec4 packed[RB * CPL];
      load_sub_block(true, cache_base, block + sub * RPS + row_in_step, last, sublane, packed);
      UNROLL for (uint u = 0u; u < RB; ++u)
        UNROLL for (uint g = 0u; g < HEADS; ++g) {
          const float w = subgroupShuffle(weight[g], row_in_step * LPR + sub + u);
          UNROLL for (uint i = 0u; i < CPL; ++i) {
            const uvec4 v = packed[u * CPL + i];
            const uint at = (g * CPL + i) * 8u;
            const vec2 v01 = unpackHalf2x16(v.x), v23 = unpackHalf2x16(v.y);
            const vec2 v45 = unpackHalf2x16(v.z), v67 = unpackHalf2x16(v.w);
            acc[at] = fma(w, v01.x, acc[at]);
            acc[at + 1u] = fma(w, v01.y, acc[at + 1u]);
            acc[at + 2u] = fma(w, v23.x, acc[at + 2u]);
            acc[at + 3u] = fma(w, v23.y, acc[at + 3u]);
            acc[at + 4u] = fma(w, v45.x, acc[at + 4u]);
            acc[at + 5u] = fma(w, v45.y, acc[at + 5u]);
            acc[at + 6u] = fma(w, v67.x, acc[at + 6u]);
            acc[at + 7u] = fma(w, v67.y, acc[at + 7u]);
          }
        }
    }
  }

  // The RPS row groups of the subgroup hold partial sums of the same
  // output elements; fold them into every lane.
  UNROLL for (uint d = LPR; d < SG; d <<= 1)
    UNROLL for (uint j = 0u; j < HEADS * HEAD_FLOATS; ++j)
      acc[j] += subgroupShuffleXor(acc[j], d);

  // Merge the NSG subgroups: rescale each to the workgroup's max, then add
  // them into shared memory one after the other.
  if (lane == 0u)
    UNROLL for (uint g = 0u; g < HEADS; ++g) {
      subgroup_max[sg * HEADS + g] = running_max[g];
      subgroup_sum[sg * HEADS + g] = running_sum[g];
    }
  barrier();
  float group_max[HEADS];
  float group_sum[HEADS];
  UNROLL for (uint g = 0u; g < HEADS; ++g) {
    group_max[g] = MAX_SENTINEL;
    UNROLL for (uint s = 0u; s < NSG; ++s) group_max[g] = max(group_max[g], subgroup_max[s * HEADS + g]);
    group_sum[g] = 0.0;
    UNROLL for (uint s = 0u; s < NSG; ++s)
      group_sum[g] += subgroup_sum[s * HEADS + g] * exp(subgroup_max[s * HEADS + g] - group_max[g]);
  }
  UNROLL for (uint s = 0u; s < NSG; ++s) {
    if (sg == s && row_in_step == 0u)
      UNROLL for (uint g = 0u; g < HEADS; ++g) {
        const float rescale = exp(running_max[g] - group_max[g]);
        UNROLL for (uint i = 0u; i < CPL; ++i)
          UNROLL for (uint e = 0u; e < 8u; ++e) {
            const uint at = g * D + (sublane + LPR * i) * 8u + e;
            const float mine = acc[(g * CPL + i) * 8u + e] * rescale;
            merged[at] = s == 0u ? mine : merged[at] + mine;
          }
      }
    barrier();
  }

  const uint threads = NSG * SG;
  const uint tid = gl_LocalInvocationIndex;
  if (nwg == 1u) {
    for (uint at = tid; at < HEADS * D; at += threads) {
      const uint g = at / D;
      const float inverse = group_sum[g] == 0.0 ? 0.0 : 1.0 / group_sum[g];
      dst[q_row * D + at] = merged[at] * inverse;
    }
  } else {
    // The decode_reduce layout: float4 chunk c of row r from slice w at
    // float4 index r * (D / 4) * nwg + nwg * c + w; then (S, M) pairs.
    for (uint at = tid; at < HEADS * D; at += threads) {
      const uint row = q_row + at / D;
      const uint d = at % D;
      dst[4u * (row * (D / 4u) * nwg + nwg * (d >> 2) + slice) + (d & 3u)] = merged[at];
    }
    const uint rows = gl_NumWorkGroups.z * params.num_heads;
    if (tid < HEADS) {
      const uint stats = rows * D * nwg + ((q_row + tid) * nwg + slice) * 2u;
      dst[stats] = group_sum[tid];
      dst[stats + 1u] = group_max[tid];
    }
  }
}
)glsl";
};

}  // namespace tessel::kernels

namespace tessel::kernels {

// Query heads per workgroup come in powers of two up to max_heads_per_group.
namespace detail {
template <int D, bool UpToEight = (max_heads_per_group(D) >= 8)>
struct decode_f16_head_variants {
  using type = variant_list<decode_f16<D, 1>, decode_f16<D, 2>, decode_f16<D, 4>>;
};
template <int D>
struct decode_f16_head_variants<D, true> {
  using type = variant_list<decode_f16<D, 1>, decode_f16<D, 2>, decode_f16<D, 4>, decode_f16<D, 8>>;
};
}  // namespace detail

template <int D>
using decode_f16_head_variants = typename detail::decode_f16_head_variants<D>::type;

using decode_f16_variants =
    join_variants_t<decode_f16_head_variants<64>, decode_f16_head_variants<128>,
                    decode_f16_head_variants<256>, decode_f16_head_variants<512>>;

// One decode step over a batch of sequences of equal length. Q and the output
// are f32 [batch, num_heads, head_dim]; K and V are f16 [batch, num_kv_heads,
// kv_capacity, head_dim].
struct decode_f16_args {
  std::uint32_t batch = 1;
  std::uint32_t num_heads = 0;
  std::uint32_t num_kv_heads = 0;
  std::uint32_t head_dim = 0;
  std::uint32_t kv_seq_len = 0;
  std::uint32_t kv_capacity = 0;
  float scale = 0;  // 0: 1 / sqrt(head_dim)
  decode_mask mask = decode_mask::none;
  std::uint32_t sliding_window = 0;
  std::uint32_t ring_start = 0;
  float softcap = 0;                  // 0: off
  std::uint32_t nwg = 0;              // slices per head; 0: decode_plan chooses
  std::uint32_t heads_per_group = 0;  // query heads per workgroup; 0: decode_plan chooses
};

// How a decode call is split, and the scratch it needs.
struct decode_plan {
  std::uint32_t nwg = 1;
  std::uint32_t heads_per_group = 1;
  std::uint64_t scratch_floats = 0;  // 0 when nwg == 1
  extent3 grid;
};

namespace detail {

inline constexpr std::string_view decode_op = "decode_f16";

// Keys a decode call attends: the whole cache or the sliding window.
constexpr std::uint32_t attended_positions(const decode_f16_args& a) {
  return a.mask == decode_mask::sliding_window ? std::min(a.kv_seq_len, a.sliding_window)
                                               : a.kv_seq_len;
}

// Whether a workgroup may compute `heads` query heads of a GQA group:
// a variant exists (a power of two that fits the registers) and it divides
// the group.
constexpr bool valid_heads_per_group(std::uint32_t heads, std::uint32_t group_size,
                                     std::uint32_t head_dim) {
  return heads != 0 && (heads & (heads - 1)) == 0 && heads <= max_heads_per_group(head_dim) &&
         group_size % heads == 0;
}

// The most query heads per workgroup: each K/V row is then read by the
// fewest workgroups.
constexpr std::uint32_t default_heads_per_group(std::uint32_t group_size, std::uint32_t head_dim) {
  std::uint32_t heads = max_heads_per_group(head_dim);
  while (!valid_heads_per_group(heads, group_size, head_dim)) heads /= 2;
  return heads;
}

// Calls f(std::integral_constant<int, H>{}) for the variant H == heads.
template <int D, class F>
void with_heads(std::uint32_t heads, F&& f) {
  auto call = [&]<int H>() {
    if constexpr (static_cast<std::uint32_t>(H) <= max_heads_per_group(D))
      if (heads == static_cast<std::uint32_t>(H)) f(std::integral_constant<int, H>{});
  };
  call.template operator()<1>();
  call.template operator()<2>();
  call.template operator()<4>();
  call.template operator()<8>();
}

// Slices per head. Enough workgroups to give every compute unit about
// `waves` of them, no slice shorter than `min_blocks` blocks per subgroup,
// and at most max_decode_nwg. Devices that do not report their compute
// units are assumed to have 16.
inline std::uint32_t default_nwg(const vk::device_traits& device,
                                 std::uint64_t workgroups_per_slice, std::uint32_t positions,
                                 std::uint32_t subgroups) {
  constexpr std::uint64_t waves = 4, min_blocks = 2;
  const std::uint64_t units = device.compute_units ? device.compute_units : 16;
  const std::uint64_t wanted = (units * waves + workgroups_per_slice - 1) / workgroups_per_slice;
  const std::uint64_t block = std::uint64_t{device.subgroup_size ? device.subgroup_size : 32};
  const std::uint64_t longest =
      (positions + block * subgroups * min_blocks - 1) / (block * subgroups * min_blocks);
  return static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(std::min(wanted, longest), 1, max_decode_nwg));
}

}  // namespace detail

// The rules of the attention shape every decode op shares (the decode_f16
// fields of `a`; ops over other caches extend the struct), reported as `op`.
inline void validate_decode_shape(std::string_view op, const decode_f16_args& a) {
  require_in_range(op, "batch", a.batch, 1, max_grid_x);
  require_positive(op, "num_heads", a.num_heads);
  require_positive(op, "num_kv_heads", a.num_kv_heads);
  require(a.num_heads % a.num_kv_heads == 0, op, "num_heads", a.num_heads,
          "must be a multiple of num_kv_heads = " + std::to_string(a.num_kv_heads));
  require_positive(op, "kv_seq_len", a.kv_seq_len);
  require(a.kv_capacity >= a.kv_seq_len, op, "kv_capacity", a.kv_capacity,
          "must be >= kv_seq_len = " + std::to_string(a.kv_seq_len));
  require(a.ring_start < a.kv_capacity, op, "ring_start", a.ring_start,
          "must be < kv_capacity = " + std::to_string(a.kv_capacity));
  require(static_cast<std::uint32_t>(a.mask) <= 2, op, "mask", static_cast<std::uint32_t>(a.mask),
          "must be 0 (none), 1 (causal) or 2 (sliding window)");
  if (a.mask == decode_mask::sliding_window)
    require_positive(op, "sliding_window", a.sliding_window);
  require(std::isfinite(a.scale) && a.scale >= 0, op, "scale", a.scale,
          "must be finite and >= 0 (0 selects 1/sqrt(head_dim))");
  require(std::isfinite(a.softcap) && a.softcap >= 0, op, "softcap", a.softcap,
          "must be finite and >= 0 (0 disables it)");
}

// The split of a validated shape (validate_decode_shape) for variants with
// `subgroups` subgroups per workgroup: explicit nwg and heads_per_group are
// checked, not changed. Also checks that q and the scratch are 32-bit
// indexable; the cache buffers are the op's to check.
inline decode_plan plan_decode_split(std::string_view op, const vk::device_traits& device,
                                     const decode_f16_args& a, std::uint32_t subgroups) {
  const std::uint32_t group_size = a.num_heads / a.num_kv_heads;
  decode_plan plan;
  if (a.heads_per_group != 0) {
    require(
        detail::valid_heads_per_group(a.heads_per_group, group_size, a.head_dim), op,
        "heads_per_group", a.heads_per_group,
        "must be a power of two dividing num_heads / num_kv_heads = " + std::to_string(group_size) +
            " and <= " + std::to_string(max_heads_per_group(a.head_dim)));
    plan.heads_per_group = a.heads_per_group;
  } else {
    plan.heads_per_group = detail::default_heads_per_group(group_size, a.head_dim);
  }
  const std::uint64_t groups_y =
      std::uint64_t{a.num_kv_heads} * (group_size / plan.heads_per_group);
  require(groups_y <= max_grid_x, op, "num_kv_heads * head groups", groups_y,
          "must be <= " + std::to_string(max_grid_x));
  if (a.nwg != 0) {
    require_in_range(op, "nwg", a.nwg, 1, max_decode_nwg);
    plan.nwg = a.nwg;
  } else {
    plan.nwg =
        detail::default_nwg(device, groups_y * a.batch, detail::attended_positions(a), subgroups);
  }
  plan.grid = {plan.nwg, static_cast<std::uint32_t>(groups_y), a.batch};

  const std::uint64_t rows = checked_product(op, "batch * num_heads", {a.batch, a.num_heads});
  require_32bit_indexable(op, "q", checked_product(op, "q size", {rows, a.head_dim}));
  if (plan.nwg > 1) {
    plan.scratch_floats = decode_partials_size(rows, a.head_dim, plan.nwg);
    require_32bit_indexable(op, "scratch", plan.scratch_floats);
  }
  return plan;
}

// Validates the arguments and chooses the split for variants with
// `subgroups` subgroups per workgroup (explicit nwg and heads_per_group are
// checked, not changed). Which head dims have a variant is the caller's rule.
inline decode_plan plan_decode_f16(const vk::device_traits& device, const decode_f16_args& a,
                                   std::uint32_t subgroups = decode_subgroups) {
  constexpr std::string_view op = detail::decode_op;
  require(a.head_dim > 0 && a.head_dim % 8 == 0, op, "head_dim", a.head_dim,
          "must be a positive multiple of 8");
  validate_decode_shape(op, a);
  require_32bit_indexable(
      op, "keys",
      checked_product(op, "cache size", {a.batch, a.num_kv_heads, a.kv_capacity, a.head_dim}));
  return plan_decode_split(op, device, a, subgroups);
}

// Records one decode step with the variants decode_f16<D, *, NSG>: out =
// attention(q, keys, values). `scratch` holds the partials when the plan
// splits heads (plan.scratch_floats > 0; it may be larger) and may be null
// otherwise. Everything is validated before anything is recorded.
template <int D, int NSG = decode_subgroups>
void record_decode_f16_for(vk::recorder& rec, const vk::buffer<float>& q,
                           const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                           const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                           const decode_f16_args& a) {
  constexpr std::string_view op = detail::decode_op;
  require(a.head_dim == D, op, "head_dim", a.head_dim,
          "must equal the variant's " + std::to_string(D));
  const decode_plan plan = plan_decode_f16(rec.device(), a, NSG);
  const std::uint64_t rows = std::uint64_t{a.batch} * a.num_heads;
  require_elements(op, "q", q.size(), rows * D);
  require_elements(op, "out", out.size(), rows * D);
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * D;
  require_elements(op, "keys", keys.size(), cache);
  require_elements(op, "values", values.size(), cache);
  if (plan.nwg > 1) {
    require(scratch != nullptr, op, "scratch", "none",
            "is required: nwg = " + std::to_string(plan.nwg) + " needs " +
                std::to_string(plan.scratch_floats) + " floats");
    require(scratch->size() >= plan.scratch_floats, op, "scratch element count", scratch->size(),
            "must be >= " + std::to_string(plan.scratch_floats) +
                " (decode_plan::scratch_floats for nwg = " + std::to_string(plan.nwg) + ")");
  }

  const float scale = a.scale != 0 ? a.scale : 1.0f / std::sqrt(static_cast<float>(D));
  const VecF16Params params{a.num_heads,
                            a.num_kv_heads,
                            a.head_dim,
                            a.kv_seq_len,
                            a.kv_capacity,
                            scale,
                            static_cast<std::uint32_t>(a.mask),
                            a.sliding_window,
                            a.ring_start};
  const vk::spec_value spec[] = {vk::spec_value::of_float(0, a.softcap)};
  const vk::buffer<float>& dst = plan.nwg == 1 ? out : *scratch;
  detail::with_heads<D>(plan.heads_per_group, [&](auto heads) {
    rec.dispatch<decode_f16<D, decltype(heads)::value, NSG>>(params, spec, plan.grid, q, keys,
                                                             values, dst);
  });
  if (plan.nwg > 1)
    record_decode_reduce_for<D>(rec, *scratch, out, static_cast<std::uint32_t>(rows), plan.nwg);
}

// The same for a run-time head dim among the shipped variants (64, 128, 256
// and 512); another multiple of 8 is a record_decode_f16_for<D> away.
inline void record_decode_f16(vk::recorder& rec, const vk::buffer<float>& q,
                              const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                              const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                              const decode_f16_args& a) {
  with_head_dim<64, 128, 256, 512>(detail::decode_op, a.head_dim, [&](auto d) {
    record_decode_f16_for<decltype(d)::value>(rec, q, keys, values, out, scratch, a);
  });
}

}  // namespace tessel::kernels
