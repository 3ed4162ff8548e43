// The decode engine: what every single-query decode kernel shares (KERNELS.md
// sections 7 and 11.2), whatever its KV cache stores. For each sequence b and
// query head h,
//   out[b, h] = softmax_j(s_j) V[b, h / G, slot(j)]   over the attended j,
//   s_j = scale * <Q[b, h], K[b, h / G, slot(j)]>      (softcap * tanh(s / softcap) when set)
// with G = num_heads / num_kv_heads query heads per KV head.
//
// Positions are logical: j = 0 is the oldest cached token and kv_seq_len - 1
// the query itself. A ring-buffer cache stores j in slot (ring_start + j) mod
// kv_capacity; a linear cache has ring_start = 0. The attended set is
// [window_start, kv_seq_len) with window_start = kv_seq_len - sliding_window
// for the sliding-window mask (when the cache is longer) and 0 otherwise; the
// engine iterates exactly that range, so masked positions cost no reads.
//
// Work split: a workgroup owns one KV head, `heads` of its query heads and
// one of NWG slices of the attended range. It walks its slice in tiles: all
// its invocations stage a tile of K and V rows in shared memory (the kernel's
// hook: f16 rows, or rows decoded from a compressed cache), then every
// subgroup scores its query heads against its share of the tile's rows. Each
// row is read from memory once for all the workgroup's heads; a subgroup
// keeps only `heads_per_subgroup` query and output rows in registers.
// NWG = 1 writes the normalized output; NWG > 1 writes the partials that
// decode_reduce merges.
//
// A kernel built on the engine supplies its parameter block (with the fields
// of VecF16Params under the same names), bindings `q` (f32) and `dst` (f32),
// and in its body, after decode_engine::glsl, the shared tile and the hooks
//   void load_tile(uint sequence, uint kv_head, uint first, uint count)
//     issues the reads of logical positions [first, first + count) (count in
//     1..TILE) of that sequence's KV head into the invocation's registers
//     (cache_slot gives a position's slot); every invocation calls it;
//   void store_tile()
//     writes what load_tile read into the shared tile, between barriers;
//     rows count..TILE-1 may hold any finite values (their weight is 0);
//   void key_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
//   void value_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
//     the 8 floats 8 * chunk .. 8 * chunk + 7 of staged row `row`.
// The engine loads the next tile while it computes on the staged one, so
// each tile's memory latency hides behind the previous tile's arithmetic.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// For one query at the newest position, none and causal attend the same keys
// (every cached token is in its past); both exist because callers pass the
// model's mask kind through.
enum class decode_mask : std::uint32_t { none = 0, causal = 1, sliding_window = 2 };

// How a decode workgroup divides its work among its subgroups: `heads` query
// heads of one KV head, `heads_per_subgroup` of them in each subgroup's
// registers, and `position_splits` subgroups sharing the rows of a tile for
// the same heads.
struct decode_tiling {
  int heads = 1;
  int heads_per_subgroup = 1;
  int position_splits = 1;

  constexpr int head_sets() const { return heads / heads_per_subgroup; }
  constexpr int subgroups() const { return head_sets() * position_splits; }
  constexpr bool valid() const {
    return std::has_single_bit(static_cast<unsigned>(heads)) &&
           std::has_single_bit(static_cast<unsigned>(heads_per_subgroup)) &&
           std::has_single_bit(static_cast<unsigned>(position_splits)) &&
           heads_per_subgroup <= heads && subgroups() <= 16;
  }
  friend constexpr bool operator==(const decode_tiling&, const decode_tiling&) = default;
};

// Query heads one workgroup computes together, at most.
inline constexpr std::uint32_t max_decode_heads = 8;

// Query and output rows one subgroup keeps in registers: 2 * heads * D / 32
// floats per lane on a 32-wide subgroup.
constexpr int max_heads_per_subgroup(int head_dim) {
  return head_dim <= 128 ? 4 : 2;
}

// The tiling the host ops use for `heads` query heads per workgroup: one
// head per subgroup, and two subgroups sharing the rows when there is only
// one head (docs/perf/decode_f16.md has the sweep behind it).
constexpr decode_tiling default_decode_tiling(int heads) {
  return {heads, 1, heads == 1 ? 2 : 1};
}

// GLSL every decode kernel shares, whatever its main(): the running max's
// sentinel, ring-buffer slots, the softcapped logit, the layout of the result
// (the output, or the partials decode_reduce merges) and the workgroup's
// slice of the attended range. Needs the parameter block's fields (as
// VecF16Params), the `softcap` constant, D and the binding `dst`.
inline constexpr std::string_view decode_helpers_glsl = R"glsl(
const float MAX_SENTINEL = -1.70141173e38;  // -FLT_MAX / 2: the running max never becomes -inf
const float NOT_ATTENDED = -3.40282347e38;  // below the sentinel: never raises the max

uint cache_slot(uint position) {
  uint slot = position + params.ring_start;
  if (slot >= params.kv_capacity) slot -= params.kv_capacity;
  return slot;
}

float logit(float dot) {
  // |x| > 15 gives tanh(x) = +-1 in f32; the clamp keeps exp-based tanh
  // implementations away from inf / inf.
  return softcap > 0.0 ? softcap * tanh(clamp(dot / softcap, -15.0, 15.0)) : dot;
}

// One element of the result: the normalized output when the workgroup owns
// the whole range, else the decode_reduce partial (float4 chunk c of row r
// from slice w at float4 index r * (D / 4) * nwg + nwg * c + w).
void write_element(uint row, uint d, float value, float sum) {
  const uint nwg = gl_NumWorkGroups.x;
  if (nwg == 1u) {
    dst[row * D + d] = value * (sum == 0.0 ? 0.0 : 1.0 / sum);
  } else {
    dst[4u * (row * (D / 4u) * nwg + nwg * (d >> 2) + gl_WorkGroupID.x) + (d & 3u)] = value;
  }
}

// The (sum, max) pair of a partial row, after all rows' partials.
void write_statistics(uint row, float sum, float running_max) {
  const uint nwg = gl_NumWorkGroups.x;
  if (nwg == 1u) return;
  const uint at = gl_NumWorkGroups.z * params.num_heads * D * nwg + (row * nwg + gl_WorkGroupID.x) * 2u;
  dst[at] = sum;
  dst[at + 1u] = running_max;
}

// This workgroup's slice of the attended logical range, cut into NWG slices
// of whole tiles of `tile` positions; empty when there are more slices than
// tiles.
void workgroup_slice(uint tile, out uint slice_begin, out uint slice_end) {
  const uint range_end = params.kv_seq_len;
  const uint range_begin = params.mask_type == 2u && range_end > params.sliding_window
                               ? range_end - params.sliding_window
                               : 0u;
  const uint tiles = (range_end - range_begin + tile - 1u) / tile;
  const uint tiles_per_slice = (tiles + gl_NumWorkGroups.x - 1u) / gl_NumWorkGroups.x;
  slice_begin = min(range_end, range_begin + gl_WorkGroupID.x * tiles_per_slice * tile);
  slice_end = min(range_end, slice_begin + tiles_per_slice * tile);
}
)glsl";

template <int D, decode_tiling T>
struct decode_engine {
  static_assert(D >= 8 && D % 8 == 0, "decode: head_dim must be a multiple of 8");
  static_assert(T.valid(),
                "decode: heads, heads per subgroup and position splits must be powers "
                "of two with at most 16 subgroups");
  static_assert(T.heads_per_subgroup <= max_heads_per_subgroup(D),
                "decode: too many query heads per subgroup for this head dim");
  static_assert(static_cast<std::uint32_t>(T.heads) <= max_decode_heads,
                "decode: too many query heads per workgroup");

  static constexpr std::uint32_t subgroups = static_cast<std::uint32_t>(T.subgroups());
  static constexpr std::uint32_t row_chunks = D / 8;  // 16-byte chunks of an f16 row

  // Lanes that share one row: the largest power of two dividing the row's
  // chunks, up to the subgroup. A subgroup covers SG / LPR rows per step.
  static constexpr std::uint32_t lanes_per_row(const target& t) {
    std::uint32_t lanes = 1;
    while (lanes * 2 <= t.subgroup_size && row_chunks % (lanes * 2) == 0) lanes *= 2;
    return lanes;
  }
  static constexpr std::uint32_t rows_per_step(const target& t) {
    return t.subgroup_size / lanes_per_row(t);
  }

  // Shared memory of the engine itself: per-subgroup softmax statistics, and
  // the merge buffer when several subgroups hold parts of the same heads.
  static constexpr std::uint32_t engine_bytes() {
    if (T.position_splits == 1) return 0;
    return (2 * subgroups * T.heads_per_subgroup + 2 * T.heads + T.heads * D) * sizeof(float);
  }

  // Positions per tile: the most (a power of two, at most max_tile) whose staged
  // rows of `row_bytes` fit beside the engine's shared memory and whose
  // loaded rows of `loaded_row_bytes` (the same unless the kernel stages a
  // decoded form of what it reads) take at most 256 bytes per invocation
  // (the loader holds the next tile in registers: 16 16-byte loads each,
  // beyond which the H100 spills them), and at least one step of rows for
  // every position split. 0 when none fit.
  static constexpr std::uint32_t tile_positions(const target& t, std::uint32_t row_bytes,
                                                std::uint32_t loaded_row_bytes = 0,
                                                std::uint32_t max_tile = 64) {
    if (loaded_row_bytes == 0) loaded_row_bytes = row_bytes;
    const std::uint32_t smallest = rows_per_step(t) * T.position_splits;
    const std::uint32_t register_bytes = 256 * subgroups * t.subgroup_size;
    if (engine_bytes() + smallest * row_bytes > t.shared_memory_bytes) return 0;
    std::uint32_t tile = smallest;
    while (tile < max_tile && engine_bytes() + 2 * tile * row_bytes <= t.shared_memory_bytes &&
           2 * tile * loaded_row_bytes <= register_bytes)
      tile *= 2;
    return tile;
  }

  // The GLSL before the kernel's hooks: constants, prototypes, the common
  // functions and main(), for tiles sized by tile_positions(t, row_bytes,
  // loaded_row_bytes, max_tile). With `query_rotation`, main rotates each query
  // row by R(x) = H(s * x) (TurboQuant's, fwht.hpp) when the kernel's bool
  // `fuse_fwht_pre` (a specialization constant) is set; the kernel lists
  // the hadamard_signs snippet.
  static std::string glsl(const target& t, std::uint32_t row_bytes, bool query_rotation = false,
                          std::uint32_t loaded_row_bytes = 0, std::uint32_t max_tile = 64) {
    const std::uint32_t sg = t.subgroup_size, lpr = lanes_per_row(t), rps = sg / lpr;
    const std::uint32_t cpl = row_chunks / lpr;
    const std::uint32_t tile = tile_positions(t, row_bytes, loaded_row_bytes, max_tile);
    const std::uint32_t split_positions = tile / T.position_splits;
    const std::uint32_t block = std::min(split_positions, sg);
    const std::uint32_t steps = block / rps;
    // Rows whose chunks a lane reduces together: about 8 chunks, within the
    // block's steps; the reduce-scatter then costs RB - 1 + log2(LPR / RB)
    // shuffles for RB rows instead of log2(LPR) per row.
    const std::uint32_t rows_per_batch = std::min(steps, std::max(1u, 8 / cpl));
    // Per-lane arrays stay in registers when unrolled; narrow subgroups (CPU
    // drivers) keep the loops, which compile much faster.
    const bool unrolled = D / lpr <= 16;
    auto constant = [](std::string_view name, std::uint32_t value) {
      return "const uint " + std::string(name) + " = " + std::to_string(value) + "u;\n";
    };
    std::string text = constant("SG", sg) + constant("LPR", lpr) + constant("RPS", rps) +
                       constant("CPL", cpl) + constant("ROW_CHUNKS", row_chunks) +
                       constant("TILE", tile) + constant("SPLIT_POSITIONS", split_positions) +
                       constant("BLOCK", block) + constant("STEPS", steps) +
                       constant("RB", rows_per_batch) + constant("HEADS", T.heads) +
                       constant("HPS", T.heads_per_subgroup) + constant("PS", T.position_splits) +
                       constant("NSG", subgroups) + constant("THREADS", subgroups * sg) +
                       "#define UNROLL " + (unrolled ? "[[unroll]]" : "") + "\n";
    if (query_rotation) text += query_rotation_text;
    text += decode_helpers_glsl;
    text +=
        replace_all(std::string(common_text), "QUERY_ROTATION\n",
                    query_rotation ? "  if (fuse_fwht_pre) rotate_query(query, sublane);\n" : "");
    text += T.position_splits > 1 ? merge_in_shared_text : merge_in_registers_text;
    return text;
  }

  // R(x) = H(s * x) / sqrt(D) of each query row in the lanes' layout: the
  // 8 elements of chunk c = sublane + LPR * i sit in two vec4 of the lane,
  // so the Walsh-Hadamard stages over element bits 0-2 and over the bits of
  // i stay in registers and those over the sublane bits are shuffles.
  // Every lane calls it in uniform control flow.
  static constexpr std::string_view query_rotation_text = R"glsl(
void rotate_query(inout vec4 query[HPS * CPL * 2u], uint sublane) {
  UNROLL for (uint g = 0u; g < HPS; ++g) {
    UNROLL for (uint i = 0u; i < CPL; ++i) {
      const uint first = (sublane + LPR * i) * 8u;
      vec4 low = query[(g * CPL + i) * 2u], high = query[(g * CPL + i) * 2u + 1u];
      low *= vec4(hadamard_sign(first), hadamard_sign(first + 1u), hadamard_sign(first + 2u),
                  hadamard_sign(first + 3u));
      high *= vec4(hadamard_sign(first + 4u), hadamard_sign(first + 5u), hadamard_sign(first + 6u),
                   hadamard_sign(first + 7u));
      low = vec4(low.x + low.y, low.x - low.y, low.z + low.w, low.z - low.w);
      low = vec4(low.x + low.z, low.y + low.w, low.x - low.z, low.y - low.w);
      high = vec4(high.x + high.y, high.x - high.y, high.z + high.w, high.z - high.w);
      high = vec4(high.x + high.z, high.y + high.w, high.x - high.z, high.y - high.w);
      query[(g * CPL + i) * 2u] = low + high;
      query[(g * CPL + i) * 2u + 1u] = low - high;
    }
    UNROLL for (uint delta = 1u; delta < LPR; delta <<= 1) {
      const bool upper = (sublane & delta) != 0u;
      UNROLL for (uint j = 0u; j < CPL * 2u; ++j) {
        const vec4 mine = query[g * CPL * 2u + j];
        const vec4 other = subgroupShuffleXor(mine, delta);
        query[g * CPL * 2u + j] = upper ? other - mine : mine + other;
      }
    }
    UNROLL for (uint span = 1u; span < CPL; span <<= 1)
      UNROLL for (uint i = 0u; i < CPL; ++i)
        if ((i & span) == 0u)
          UNROLL for (uint h = 0u; h < 2u; ++h) {
            const vec4 a = query[(g * CPL + i) * 2u + h], b = query[(g * CPL + i + span) * 2u + h];
            query[(g * CPL + i) * 2u + h] = a + b;
            query[(g * CPL + i + span) * 2u + h] = a - b;
          }
    UNROLL for (uint j = 0u; j < CPL * 2u; ++j) query[g * CPL * 2u + j] *= inversesqrt(float(D));
  }
}
)glsl";

  static constexpr std::string_view common_text = R"glsl(
void load_tile(uint sequence, uint kv_head, uint first, uint count);
void store_tile();
void key_chunk(uint row, uint chunk, out vec4 low, out vec4 high);
void value_chunk(uint row, uint chunk, out vec4 low, out vec4 high);

void merge_and_write(uint sg, uint lane, uint head_row, float running_max[HPS], float running_sum[HPS],
                     vec4 acc[HPS * CPL * 2u]);

void main() {
  const uint lane = gl_SubgroupInvocationID;
  const uint sg = gl_SubgroupID;
  const uint head_set = sg / PS;
  const uint split = sg % PS;
  const uint row_in_step = lane / LPR;
  const uint sublane = lane % LPR;
  const uint group_size = params.num_heads / params.num_kv_heads;
  const uint head_groups = group_size / HEADS;
  const uint kv_head = gl_WorkGroupID.y / head_groups;
  const uint sequence = gl_WorkGroupID.z;
  // The query row of this subgroup's first head.
  const uint head_row = sequence * params.num_heads + kv_head * group_size +
                        (gl_WorkGroupID.y % head_groups) * HEADS + head_set * HPS;

  uint slice_begin, slice_end;
  workgroup_slice(TILE, slice_begin, slice_end);

  // Lane-owned parts of each head's query (pre-scaled) and output rows: the
  // 8 floats of chunk sublane + LPR * i as two vec4.
  vec4 query[HPS * CPL * 2u];
  vec4 acc[HPS * CPL * 2u];
  float running_max[HPS];
  float running_sum[HPS];
  UNROLL for (uint g = 0u; g < HPS; ++g) {
    running_max[g] = MAX_SENTINEL;
    running_sum[g] = 0.0;
    UNROLL for (uint i = 0u; i < CPL; ++i) {
      const uint at = (head_row + g) * D + (sublane + LPR * i) * 8u;
      query[(g * CPL + i) * 2u] = params.scale * vec4(q[at], q[at + 1u], q[at + 2u], q[at + 3u]);
      query[(g * CPL + i) * 2u + 1u] = params.scale * vec4(q[at + 4u], q[at + 5u], q[at + 6u], q[at + 7u]);
      acc[(g * CPL + i) * 2u] = vec4(0.0);
      acc[(g * CPL + i) * 2u + 1u] = vec4(0.0);
    }
  }
QUERY_ROTATION
  if (slice_begin < slice_end) load_tile(sequence, kv_head, slice_begin, min(TILE, slice_end - slice_begin));
  for (uint tile = slice_begin; tile < slice_end; tile += TILE) {
    const uint count = min(TILE, slice_end - tile);
    barrier();  // the previous tile is no longer read
    store_tile();
    barrier();
    const uint next = tile + TILE;
    if (next < slice_end) load_tile(sequence, kv_head, next, min(TILE, slice_end - next));

    // This subgroup's rows of the tile, in blocks of up to SG rows read in
    // STEPS steps of RPS rows: the score of row block + s * RPS + r ends in
    // lane r * LPR + s, so each lane owns at most one row for the softmax.
    const uint split_end = min(count, (split + 1u) * SPLIT_POSITIONS);
    for (uint block = split * SPLIT_POSITIONS; block < split_end; block += BLOCK) {
      float score[HPS];
      UNROLL for (uint g = 0u; g < HPS; ++g) score[g] = 0.0;
      UNROLL for (uint sub = 0u; sub < STEPS; sub += RB) {
        // Partial dots of this lane's chunks for RB rows, then a
        // reduce-scatter across the row's lanes: lane `sublane` ends with
        // the full dot of step sub + sublane % RB.
        float partial[HPS * RB];
        UNROLL for (uint u = 0u; u < RB; ++u) {
          const uint row = block + (sub + u) * RPS + row_in_step;
          UNROLL for (uint g = 0u; g < HPS; ++g) partial[g * RB + u] = 0.0;
          UNROLL for (uint i = 0u; i < CPL; ++i) {
            vec4 low, high;
            key_chunk(row, sublane + LPR * i, low, high);
            UNROLL for (uint g = 0u; g < HPS; ++g)
              partial[g * RB + u] += dot(query[(g * CPL + i) * 2u], low) +
                                     dot(query[(g * CPL + i) * 2u + 1u], high);
          }
        }
        UNROLL for (uint span = RB / 2u; span > 0u; span >>= 1) {
          const bool upper = (sublane & span) != 0u;
          UNROLL for (uint g = 0u; g < HPS; ++g)
            UNROLL for (uint u = 0u; u < span; ++u) {
              const float low = partial[g * RB + u], high = partial[g * RB + u + span];
              partial[g * RB + u] = (upper ? high : low) + subgroupShuffleXor(upper ? low : high, span);
            }
        }
        UNROLL for (uint g = 0u; g < HPS; ++g) {
          UNROLL for (uint d = RB; d < LPR; d <<= 1) partial[g * RB] += subgroupShuffleXor(partial[g * RB], d);
          if (sublane / RB == sub / RB) score[g] = partial[g * RB];
        }
      }

      const bool attended = sublane < STEPS && block + sublane * RPS + row_in_step < split_end;
      float weight[HPS];
      UNROLL for (uint g = 0u; g < HPS; ++g) {
        const float s = attended ? logit(score[g]) : NOT_ATTENDED;
        const float new_max = max(running_max[g], subgroupMax(s));
        const float rescale = exp(running_max[g] - new_max);
        weight[g] = attended ? exp(s - new_max) : 0.0;
        running_sum[g] = running_sum[g] * rescale + subgroupAdd(weight[g]);
        running_max[g] = new_max;
        UNROLL for (uint j = 0u; j < CPL * 2u; ++j) acc[g * CPL * 2u + j] *= rescale;
      }

      UNROLL for (uint s = 0u; s < STEPS; ++s) {
        const uint row = block + s * RPS + row_in_step;
        float w[HPS];
        UNROLL for (uint g = 0u; g < HPS; ++g) w[g] = subgroupShuffle(weight[g], row_in_step * LPR + s);
        UNROLL for (uint i = 0u; i < CPL; ++i) {
          vec4 low, high;
          value_chunk(row, sublane + LPR * i, low, high);
          UNROLL for (uint g = 0u; g < HPS; ++g) {
            acc[(g * CPL + i) * 2u] = fma(vec4(w[g]), low, acc[(g * CPL + i) * 2u]);
            acc[(g * CPL + i) * 2u + 1u] = fma(vec4(w[g]), high, acc[(g * CPL + i) * 2u + 1u]);
          }
        }
      }
    }
  }

  // The RPS row groups of the subgroup hold partial sums of the same output
  // elements; fold them into every lane.
  UNROLL for (uint d = LPR; d < SG; d <<= 1)
    UNROLL for (uint j = 0u; j < HPS * CPL * 2u; ++j) acc[j] += subgroupShuffleXor(acc[j], d);
  merge_and_write(sg, lane, head_row, running_max, running_sum, acc);
}
)glsl";

  // One subgroup holds each head: it writes its rows itself.
  static constexpr std::string_view merge_in_registers_text = R"glsl(
void merge_and_write(uint sg, uint lane, uint head_row, float running_max[HPS], float running_sum[HPS],
                     vec4 acc[HPS * CPL * 2u]) {
  if (lane >= LPR) return;
  UNROLL for (uint g = 0u; g < HPS; ++g) {
    UNROLL for (uint i = 0u; i < CPL; ++i)
      UNROLL for (uint e = 0u; e < 8u; ++e)
        write_element(head_row + g, (lane + LPR * i) * 8u + e, acc[(g * CPL + i) * 2u + e / 4u][e % 4u],
                      running_sum[g]);
    if (lane == 0u) write_statistics(head_row + g, running_sum[g], running_max[g]);
  }
}
)glsl";

  // PS subgroups hold parts of the same heads: rescale each to their common
  // max and add them in shared memory one after the other.
  static constexpr std::string_view merge_in_shared_text = R"glsl(
shared float subgroup_max[NSG * HPS];
shared float subgroup_sum[NSG * HPS];
shared float head_max[HEADS];
shared float head_sum[HEADS];
shared float merged[HEADS * D];

void merge_and_write(uint sg, uint lane, uint head_row, float running_max[HPS], float running_sum[HPS],
                     vec4 acc[HPS * CPL * 2u]) {
  const uint head_set = sg / PS, split = sg % PS;
  if (lane == 0u)
    UNROLL for (uint g = 0u; g < HPS; ++g) {
      subgroup_max[sg * HPS + g] = running_max[g];
      subgroup_sum[sg * HPS + g] = running_sum[g];
    }
  barrier();
  float group_max[HPS];
  UNROLL for (uint g = 0u; g < HPS; ++g) {
    group_max[g] = MAX_SENTINEL;
    UNROLL for (uint p = 0u; p < PS; ++p)
      group_max[g] = max(group_max[g], subgroup_max[(head_set * PS + p) * HPS + g]);
    if (split == 0u && lane == 0u) {
      float sum = 0.0;
      UNROLL for (uint p = 0u; p < PS; ++p) {
        const uint s = (head_set * PS + p) * HPS + g;
        sum += subgroup_sum[s] * exp(subgroup_max[s] - group_max[g]);
      }
      head_max[head_set * HPS + g] = group_max[g];
      head_sum[head_set * HPS + g] = sum;
    }
  }
  UNROLL for (uint p = 0u; p < PS; ++p) {
    if (split == p && lane < LPR)
      UNROLL for (uint g = 0u; g < HPS; ++g) {
        const float rescale = exp(running_max[g] - group_max[g]);
        UNROLL for (uint i = 0u; i < CPL; ++i)
          UNROLL for (uint e = 0u; e < 8u; ++e) {
            const uint at = (head_set * HPS + g) * D + (lane + LPR * i) * 8u + e;
            const float mine = acc[(g * CPL + i) * 2u + e / 4u][e % 4u] * rescale;
            merged[at] = p == 0u ? mine : merged[at] + mine;
          }
      }
    barrier();
  }

  // Every invocation writes elements of the workgroup's heads.
  const uint first_row = head_row - head_set * HPS;
  for (uint at = gl_LocalInvocationIndex; at < HEADS * D; at += THREADS) {
    const uint head = at / D;
    write_element(first_row + head, at % D, merged[at], head_sum[head]);
    if (at % D == 0u) write_statistics(first_row + head, head_sum[head], head_max[head]);
  }
}
)glsl";
};

// The engine's hooks for a kernel whose K and V tiles come from two tile
// loaders named "key" and "value" (load_<name>_tile, store_<name>_tile and
// <name>_tile_chunk, as decode_f16's f16_tile_glsl writes them).
inline constexpr std::string_view decode_key_value_hooks = R"glsl(
void load_tile(uint sequence, uint kv_head, uint first, uint count) {
  const uint cache_head = sequence * params.num_kv_heads + kv_head;
  load_key_tile(cache_head, first, count);
  load_value_tile(cache_head, first, count);
}

void store_tile() {
  store_key_tile();
  store_value_tile();
}

void key_chunk(uint row, uint chunk, out vec4 low, out vec4 high) { key_tile_chunk(row, chunk, low, high); }
void value_chunk(uint row, uint chunk, out vec4 low, out vec4 high) { value_tile_chunk(row, chunk, low, high); }
)glsl";

// One decode step over a batch of sequences of equal length: Q and the
// output are f32 [batch, num_heads, head_dim]; the cache holds [batch,
// num_kv_heads, kv_capacity] rows in the kernel's format.
struct decode_args {
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

  float resolved_scale() const {
    return scale != 0 ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  }
};

// How the NWG policy rounds its estimate to a power of two: up for the
// engine's kernels, down for kernels that want at most one workgroup per
// compute unit (decode_f16's matrix kernel; docs/perf/decode_f16.md).
enum class nwg_rounding { up, down };

// How a decode call is split, and the scratch it needs.
struct decode_plan {
  std::uint32_t nwg = 1;
  std::uint32_t heads_per_group = 1;
  std::uint64_t scratch_floats = 0;  // 0 when nwg == 1
  extent3 grid;
};

namespace detail {

// Assigns the fields every decode parameter block shares (those of
// VecF16Params, under the same names) from validated arguments. The blocks
// repeat the fields instead of sharing a base because the layout reflection
// reads neither base classes nor nested structs.
template <class Block>
void fill_decode_fields(Block& block, const decode_args& a) {
  block.num_heads = a.num_heads;
  block.num_kv_heads = a.num_kv_heads;
  block.head_dim = a.head_dim;
  block.kv_seq_len = a.kv_seq_len;
  block.kv_capacity = a.kv_capacity;
  block.scale = a.resolved_scale();
  block.mask_type = static_cast<std::uint32_t>(a.mask);
  block.sliding_window = a.sliding_window;
  block.ring_start = a.ring_start;
}

// Keys a decode call attends: the whole cache or the sliding window.
constexpr std::uint32_t attended_positions(const decode_args& a) {
  return a.mask == decode_mask::sliding_window ? std::min(a.kv_seq_len, a.sliding_window)
                                               : a.kv_seq_len;
}

// Whether a workgroup may compute `heads` query heads of a GQA group: a
// power of two up to max_decode_heads that divides the group.
constexpr bool valid_heads_per_group(std::uint32_t heads, std::uint32_t group_size) {
  return std::has_single_bit(heads) && heads <= max_decode_heads && group_size % heads == 0;
}

// The most query heads per workgroup: each K/V row is then read by the
// fewest workgroups.
constexpr std::uint32_t default_heads_per_group(std::uint32_t group_size) {
  std::uint32_t heads = max_decode_heads;
  while (!valid_heads_per_group(heads, group_size)) heads /= 2;
  return heads;
}

// Calls f(std::integral_constant<int, H>{}) for H == heads.
template <class F>
void with_heads(std::uint32_t heads, F&& f) {
  auto call = [&]<int H>() {
    if (heads == static_cast<std::uint32_t>(H)) f(std::integral_constant<int, H>{});
  };
  call.template operator()<1>();
  call.template operator()<2>();
  call.template operator()<4>();
  call.template operator()<8>();
}

// Slices per head: at least one workgroup per compute unit, and slices of
// about 2 MiB of cache each (fewer, longer slices are slower to fill the
// machine; more, shorter ones spend more time in the reduce and in per-slice
// setup), rounded up to a power of two (on the H100, 16 or 32 slices of a
// 32768-position cache run up to 1.6x faster than 17; `rounding` down for
// kernels that say so), none shorter than the
// longest tile (64 positions), at most max_decode_nwg. Devices that do not
// report their compute units are assumed to have 16. docs/perf/decode_f16.md
// has the sweep.
inline std::uint32_t default_nwg(const vk::device_traits& device,
                                 std::uint64_t workgroups_per_slice, std::uint32_t positions,
                                 std::uint64_t position_bytes, nwg_rounding rounding) {
  constexpr std::uint64_t slice_bytes = 2ull << 20, shortest = 64;
  const std::uint64_t units = device.compute_units ? device.compute_units : 16;
  const std::uint64_t to_fill = (units + workgroups_per_slice - 1) / workgroups_per_slice;
  const std::uint64_t by_size = (positions * position_bytes + slice_bytes - 1) / slice_bytes;
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(
      rounding == nwg_rounding::up ? std::bit_ceil(std::max(to_fill, by_size))
                                   : std::bit_floor(std::max(to_fill, by_size)),
      1, std::min<std::uint64_t>((positions + shortest - 1) / shortest, max_decode_nwg)));
}

}  // namespace detail

// Validates the arguments every decode op shares and chooses the split
// (explicit nwg and heads_per_group are checked, not changed) for a cache
// of `position_bytes` bytes per position and KV head (K and V). Which head
// dims have a variant, and the cache's own rules, are the op's.
inline decode_plan plan_decode(std::string_view op, const vk::device_traits& device,
                               const decode_args& a, std::uint64_t position_bytes,
                               nwg_rounding rounding = nwg_rounding::up) {
  require(a.head_dim > 0 && a.head_dim % 8 == 0, op, "head_dim", a.head_dim,
          "must be a positive multiple of 8");
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

  const std::uint32_t group_size = a.num_heads / a.num_kv_heads;
  decode_plan plan;
  if (a.heads_per_group != 0) {
    require(detail::valid_heads_per_group(a.heads_per_group, group_size), op, "heads_per_group",
            a.heads_per_group,
            "must be a power of two dividing num_heads / num_kv_heads = " +
                std::to_string(group_size) + " and <= " + std::to_string(max_decode_heads));
    plan.heads_per_group = a.heads_per_group;
  } else {
    plan.heads_per_group = detail::default_heads_per_group(group_size);
  }
  const std::uint64_t groups_y =
      std::uint64_t{a.num_kv_heads} * (group_size / plan.heads_per_group);
  require(groups_y <= max_grid_x, op, "num_kv_heads * head groups", groups_y,
          "must be <= " + std::to_string(max_grid_x));
  if (a.nwg != 0) {
    require_in_range(op, "nwg", a.nwg, 1, max_decode_nwg);
    plan.nwg = a.nwg;
  } else {
    plan.nwg = detail::default_nwg(device, groups_y * a.batch, detail::attended_positions(a),
                                   position_bytes, rounding);
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

// The buffers every decode op shares: q and out hold batch * num_heads rows
// of head_dim floats, and a split plan needs scratch for its partials.
inline void validate_decode_buffers(std::string_view op, const decode_args& a,
                                    const decode_plan& plan, const vk::buffer<float>& q,
                                    const vk::buffer<float>& out,
                                    const vk::buffer<float>* scratch) {
  const std::uint64_t elements = std::uint64_t{a.batch} * a.num_heads * a.head_dim;
  require_elements(op, "q", q.size(), elements);
  require_elements(op, "out", out.size(), elements);
  if (plan.nwg == 1) return;
  require(scratch != nullptr, op, "scratch", "none",
          "is required: nwg = " + std::to_string(plan.nwg) + " needs " +
              std::to_string(plan.scratch_floats) + " floats");
  require(scratch->size() >= plan.scratch_floats, op, "scratch element count", scratch->size(),
          "must be >= " + std::to_string(plan.scratch_floats) +
              " (decode_plan::scratch_floats for nwg = " + std::to_string(plan.nwg) + ")");
}

// The buffer a decode kernel writes (out, or scratch for a split plan), and
// the reduce that follows a split.
inline const vk::buffer<float>& decode_destination(const decode_plan& plan,
                                                   const vk::buffer<float>& out,
                                                   const vk::buffer<float>* scratch) {
  return plan.nwg == 1 ? out : *scratch;
}
template <int D>
void record_decode_merge(vk::recorder& rec, const decode_args& a, const decode_plan& plan,
                         const vk::buffer<float>* scratch, const vk::buffer<float>& out) {
  if (plan.nwg > 1)
    record_decode_reduce_for<D>(rec, *scratch, out, a.batch * a.num_heads, plan.nwg);
}

}  // namespace tessel::kernels
