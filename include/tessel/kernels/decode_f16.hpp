// Single-query decode attention over an f16 KV cache (KERNELS.md sections 7
// and 11.2), on the decode engine (decode_attention.hpp: the math, masks,
// rings and work split). This header supplies the f16 cache: K and V f16
// [batch, num_kv_heads, kv_capacity, head_dim], staged a tile at a time into
// shared memory with 16-byte loads.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/kernels/decode_attention.hpp"
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

using decode_f16_args = decode_args;

// The reader of rows of D halves staged in the shared array `shared_tile`
// (`row_stride` uvec4 per row, ROW_CHUNKS of them used): void
// <cache>_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high), the
// floats 8 chunk .. 8 chunk + 7.
inline std::string f16_tile_chunk_glsl(std::string_view cache_name, std::string_view shared_tile,
                                       std::string_view row_stride = "ROW_CHUNKS") {
  std::string text = R"glsl(
void CACHE_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high) {
  const uvec4 packed = SHARED_TILE[row * ROW_STRIDE + chunk];
  low = vec4(unpackHalf2x16(packed.x), unpackHalf2x16(packed.y));
  high = vec4(unpackHalf2x16(packed.z), unpackHalf2x16(packed.w));
}
)glsl";
  text = replace_all(std::move(text), "ROW_STRIDE", row_stride);
  return replace_all(replace_all(std::move(text), "SHARED_TILE", shared_tile), "CACHE", cache_name);
}

// The tile of an f16 cache for the decode engine (decode_attention.hpp):
// rows of D halves read from the buffer `<buffer>` (with a uvec4 wide view)
// with 16-byte loads. For cache "key" (and likewise "value"):
//   void load_key_tile(uint cache_head, uint first, uint count)
//   void store_key_tile()
//   void key_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
// Rows past `count` repeat the last row: they stay finite and inside the
// attended range. The rows are staged in the shared array `<cache>_tile`,
// or in `shared_tile` (TILE * ROW_CHUNKS uvec4 or more) when the includer
// declares one to share it with another loader. With `padded_rows` a staged
// row takes ROW_CHUNKS + 1 chunks (<cache>_tile_STRIDE), which spreads the
// matrix kernel's column-major loads over the shared-memory banks.
inline std::string f16_tile_glsl(std::string_view cache_name, std::string_view buffer_name,
                                 std::string_view shared_tile = {}, bool padded_rows = false) {
  std::string text =
      std::string("\nconst uint CACHE_tile_STRIDE = ROW_CHUNKS") + (padded_rows ? " + 1u;" : ";");
  if (shared_tile.empty()) text += "\nshared uvec4 CACHE_tile[TILE * CACHE_tile_STRIDE];";
  text += R"glsl(
const uint CACHE_tile_LOADS = (TILE * ROW_CHUNKS + THREADS - 1u) / THREADS;

// This invocation's share of the next tile, in flight while the staged one
// is used.
uvec4 CACHE_tile_in[CACHE_tile_LOADS];

void load_CACHE_tile(uint cache_head, uint first, uint count) {
  const uint base = cache_head * params.kv_capacity;
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = min(gl_LocalInvocationIndex + i * THREADS, TILE * ROW_CHUNKS - 1u);
    const uint row = min(at / ROW_CHUNKS, count - 1u);
    CACHE_tile_in[i] = BUFFER_wide[(base + cache_slot(first + row)) * ROW_CHUNKS + at % ROW_CHUNKS];
  }
}

void store_CACHE_tile() {
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = gl_LocalInvocationIndex + i * THREADS;
    if (at < TILE * ROW_CHUNKS)
      SHARED_TILE[at / ROW_CHUNKS * CACHE_tile_STRIDE + at % ROW_CHUNKS] = CACHE_tile_in[i];
  }
}
)glsl";
  const std::string tile =
      shared_tile.empty() ? std::string(cache_name) + "_tile" : std::string(shared_tile);
  text = replace_all(std::move(text), "SHARED_TILE", tile);
  return replace_all(replace_all(std::move(text), "CACHE", cache_name), "BUFFER", buffer_name) +
         f16_tile_chunk_glsl(cache_name, tile, std::string(cache_name) + "_tile_STRIDE");
}

template <int D, decode_tiling T = default_decode_tiling(1)>
struct decode_f16 {
  using engine = decode_engine<D, T>;
  static constexpr auto name = tessel::name("decode_f16", "d", D, "h", T.heads, "r",
                                            T.heads_per_subgroup, "p", T.position_splits);
  using params = VecF16Params;
  // K and V rows are read as uvec4: 8 halves per load.
  using bindings = tessel::bindings<in<"q", float>, in<"keys", f16, vec<std::uint32_t, 4>>,
                                    in<"values", f16, vec<std::uint32_t, 4>>, out<"dst", float>>;
  using constants = tessel::constants<spec<"softcap", float, 0, 0.0f>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>>;
  using workgroup = tessel::workgroup<lanes{engine::subgroups}>;
  static constexpr extension extensions =
      extension::subgroup_basic | extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;

  // A staged row: its K and V halves.
  static constexpr std::uint32_t row_bytes = 4 * D;
  static constexpr std::uint32_t shared_bytes(const target& t) {
    return engine::engine_bytes() + engine::tile_positions(t, row_bytes) * row_bytes;
  }

  static std::string body(const target& t) {
    return engine::glsl(t, row_bytes) + f16_tile_glsl("key", "keys") +
           f16_tile_glsl("value", "values") + std::string(decode_key_value_hooks);
  }
};

// The shipped variants: every head count with its default tiling.
template <int D>
using decode_f16_head_variants =
    variant_list<decode_f16<D, default_decode_tiling(1)>, decode_f16<D, default_decode_tiling(2)>,
                 decode_f16<D, default_decode_tiling(4)>, decode_f16<D, default_decode_tiling(8)>>;

using decode_f16_variants =
    join_variants_t<decode_f16_head_variants<64>, decode_f16_head_variants<128>,
                    decode_f16_head_variants<256>, decode_f16_head_variants<512>>;

// --- the cooperative-matrix kernel ---------------------------------------------
//
// The same op on NVIDIA's matrix units (VK_NV_cooperative_matrix), which
// record_decode_f16 runs wherever decode_f16_coopmat_supported says the
// device can. A workgroup owns one KV head, `heads` (a specialization
// constant, up to 8) of its query heads and one NWG slice, like the engine's
// kernels, but scores all its heads as one matrix product per tile, so each
// staged K and V element is read from shared memory about once per
// workgroup instead of once per head, and converted by the matrix units:
//   S[16 x TILE] = Q[16 x D] K^T,   O[16 x D] += P[16 x TILE] V.
//
// Precision. The matrix units take f16 operands. K and V are f16 already.
// Row h of Q holds the head of x = scale * q_h (x with its 13 low
// significand bits cleared, exactly an f16; 0 where |x| < 2^-14) and row
// 8 + h the rest times 2^12 rounded to f16, so S[h] + 2^-12 S[8 + h] =
// scale * <q_h, k> within 2^-21 relative to sum |scale * q_i * k_i| (and
// 2^-26 absolute per element of x). The head is cut by bits rather than by
// rounding to f16 and back: on the H100 that round trip was left out and
// the rest came out 0 (the error of f16 Q). The probabilities are split
// the same way, the rest times 2^16 (a probability is at most
// e^RESCALE_SLACK; below 2^-30 it is lost), and O[h] + 2^-16 O[8 + h] is
// the output. Products and sums are f32 as in the portable kernel; the
// tests' tolerance is the same. |scale * q| must stay below 2^14 (the
// rest's range).

// The lane mapping assumes NVIDIA's 32-lane subgroups.
inline constexpr std::uint32_t decode_coopmat_lanes = 32;

// A tile shape of the matrix kernel: `positions` positions of K and V per
// staged tile (16, 32 or 64), `subgroups` subgroups, the scores' head dim
// split `score_split` ways among them (each subgroup multiplies D /
// score_split dims of Q, held in registers, with its column blocks of K^T;
// the parts are summed by the softmax), and whether K and V are staged
// `alternately` in one shared tile (V once the scores are taken, twice the
// positions in the same shared memory). In P V each subgroup owns D /
// subgroups dims of O.
struct decode_coopmat_tiles {
  std::uint32_t positions = 16;
  std::uint32_t subgroups = 4;
  std::uint32_t score_split = 1;
  bool alternately = false;
  friend constexpr bool operator==(const decode_coopmat_tiles&,
                                   const decode_coopmat_tiles&) = default;
};

// Floats of the partial scores (16 rows of positions + 4 per part, padded
// against bank conflicts), at least the subgroups' 16x16 scratch that
// shares them.
constexpr std::uint32_t decode_coopmat_score_floats(decode_coopmat_tiles t) {
  return std::max(t.score_split * 16 * (t.positions + 4), t.subgroups * 256);
}

// Shared memory of a tile shape: K and V tiles (one when staged
// alternately) of f16 rows padded by 16 bytes, the scores, the f16
// probabilities (16 rows of positions + 8) and three floats per head of
// statistics.
constexpr std::uint32_t decode_coopmat_shared_bytes(std::uint32_t head_dim,
                                                    decode_coopmat_tiles t) {
  return (t.alternately ? 1 : 2) * t.positions * (head_dim / 8 + 1) * 16 +
         decode_coopmat_score_floats(t) * 4 + 16 * (t.positions + 8) * 2 + 3 * max_decode_heads * 4;
}

// The fastest tile shapes of the H100 sweep (docs/perf/decode_f16.md): 16
// positions (all that fit at D = 512) of 8 subgroups at D = 512, of 4
// subgroups at D = 256, and 32 positions of 4 subgroups below; the scores'
// dims split so that each subgroup holds at most 64 dims of Q (4 f16
// fragments) and the column groups that leaves divide the tile's blocks.
constexpr decode_coopmat_tiles decode_coopmat_tiles_for(std::uint32_t head_dim) {
  if (head_dim >= 512) return {16, 8, 8, false};
  if (head_dim >= 256) return {16, 4, 4, false};
  return {32, 4, std::max(head_dim / 64, 2u), false};
}

// Whether a device (its target) runs the matrix kernel at head dim
// `head_dim`: NV cooperative matrices of 16x16x16 f16 x f16 -> f32, 32-lane
// subgroups and the shared memory of its tiles.
inline bool decode_f16_coopmat_supported(const target& t, std::uint32_t head_dim) {
  constexpr coopmat_shape shape{
      16, 16, 16, scalar_kind::f16, scalar_kind::f16, scalar_kind::f32, scalar_kind::f32};
  return has(t.features, feature::cooperative_matrix_nv) &&
         t.subgroup_size == decode_coopmat_lanes && t.has_coopmat_shape(shape) &&
         (head_dim == 64 || head_dim == 128 || head_dim == 256 || head_dim == 512) &&
         decode_coopmat_shared_bytes(head_dim, decode_coopmat_tiles_for(head_dim)) <=
             t.shared_memory_bytes;
}

namespace detail {

// The matrix kernel's tile loaders (f16_tile_glsl's) and shared tiles:
// K's rows staged in key_tile, V's in value_tile, or also in key_tile when
// staged alternately (VALUE_TILE names it).
inline std::string decode_coopmat_loaders(bool alternately) {
  const std::string_view value_tile = alternately ? "key_tile" : "value_tile";
  std::string text = R"glsl(
// The staged tiles, TILE rows of KV_STRIDE 16-byte chunks; Q is staged in
// the K tile before the first one.
shared uvec4 key_tile[TILE * KV_STRIDE];
)glsl";
  if (!alternately) text += "shared uvec4 value_tile[TILE * KV_STRIDE];\n";
  return text + "#define VALUE_TILE " + std::string(value_tile) + "\n" +
         f16_tile_glsl("key", "keys", "key_tile", true) +
         f16_tile_glsl("value", "values", value_tile, true);
}

// The matrix kernel's main(); see decode_f16_coopmat below.
inline constexpr std::string_view decode_coopmat_main = R"glsl(
#define F16_TILE fcoopmatNV<16, SUBGROUP_SCOPE, 16, 16>
#define F32_TILE fcoopmatNV<32, SUBGROUP_SCOPE, 16, 16>

// The SD parts of the scores, 16 rows each; between the softmax and the next
// tile's scores also each subgroup's 16x16 scratch.
shared float scores[SCORE_FLOATS];
shared float16_t probabilities[16u * P_STRIDE];
// Per head: the factor its output rows take in this tile, and at the end its
// sum and running max.
shared float row_scale[8];
shared float head_sum[8];
shared float head_max[8];

void sync_subgroup() {
  subgroupMemoryBarrierShared();
  subgroupBarrier();
}

// x with its 13 low significand bits cleared (0 below f16's normal range):
// exactly an f16, and x - f16_head(x) is exact in f32.
float f16_head(float x) {
  return abs(x) < 6.10351562e-05 ? 0.0 : uintBitsToFloat(floatBitsToUint(x) & 0xFFFFE000u);
}

void main() {
  const uint tid = gl_LocalInvocationIndex;
  const uint sg = gl_SubgroupID;
  const uint lane = gl_SubgroupInvocationID;
  const uint group_size = params.num_heads / params.num_kv_heads;
  const uint head_groups = group_size / heads;
  const uint kv_head = gl_WorkGroupID.y / head_groups;
  const uint sequence = gl_WorkGroupID.z;
  const uint cache_head = sequence * params.num_kv_heads + kv_head;
  // The query row of the workgroup's first head.
  const uint first_row = sequence * params.num_heads + kv_head * group_size +
                         (gl_WorkGroupID.y % head_groups) * heads;
  uint slice_begin, slice_end;
  workgroup_slice(TILE, slice_begin, slice_end);

  // Q as 16 x D f16, staged in the K tile: row h < heads the head of
  // scale * q_h, row 8 + h the rest times Q_LOW; the other rows and all
  // probabilities are zero.
  for (uint c = tid; c < 16u * ROW_CHUNKS; c += THREADS) {
    const uint row = c / ROW_CHUNKS, chunk = c % ROW_CHUNKS, head = row % 8u;
    uvec4 packed = uvec4(0u);
    if (head < heads) {
      const uint at = (first_row + head) * D + chunk * 8u;
      UNROLL for (uint e = 0u; e < 4u; ++e) {
        const vec2 x = params.scale * vec2(q[at + 2u * e], q[at + 2u * e + 1u]);
        const vec2 high = vec2(f16_head(x.x), f16_head(x.y));
        packed[e] = packFloat2x16(f16vec2(row < 8u ? high : (x - high) * Q_LOW));
      }
    }
    key_tile[row * KV_STRIDE + chunk] = packed;
  }
  for (uint i = tid; i < 16u * P_STRIDE; i += THREADS) probabilities[i] = float16_t(0.0);
  barrier();
  // This subgroup's part of the scores' dims and its first column block.
  const uint score_part = sg % SD;
  const uint first_block = sg / SD * CBS;
  F16_TILE query[QF];
  UNROLL for (uint f = 0u; f < QF; ++f)
    coopMatLoadNV(query[f], key_tile, (score_part * DSP + 16u * f) / 8u, KV_STRIDE, false);

  F32_TILE acc[OF];
  UNROLL for (uint f = 0u; f < OF; ++f) acc[f] = F32_TILE(0.0);
  // The online softmax runs on SL lanes per head, each on every SL-th
  // position of the tile; they all keep the head's running max, and
  // partial sums added at the end.
  const uint softmax_head = tid / SL;
  const uint softmax_lane = tid % SL;
  float running_max = MAX_SENTINEL;
  float running_sum = 0.0;
  const uint scratch = sg * 256u;

  // The next tile's K and V are loaded into registers while this one is
  // computed on; staged alternately, V's loads start once V is staged.
  if (slice_begin < slice_end) {
    load_key_tile(cache_head, slice_begin, min(TILE, slice_end - slice_begin));
    load_value_tile(cache_head, slice_begin, min(TILE, slice_end - slice_begin));
  }
  for (uint tile = slice_begin; tile < slice_end; tile += TILE) {
    const uint count = min(TILE, slice_end - tile);
    const uint next = tile + TILE;
    barrier();  // Q, the previous tile and the probabilities are no longer read
    store_key_tile();
    if (!ALTERNATELY) store_value_tile();
    barrier();
    if (next < slice_end) {
      load_key_tile(cache_head, next, min(TILE, slice_end - next));
      if (!ALTERNATELY) load_value_tile(cache_head, next, min(TILE, slice_end - next));
    }

    // Partial scores of this subgroup's dims for its column blocks; K^T is
    // the K tile read column-major.
    UNROLL for (uint b = 0u; b < CBS; ++b) {
      const uint block = first_block + b;
      F32_TILE s = F32_TILE(0.0);
      UNROLL for (uint f = 0u; f < QF; ++f) {
        F16_TILE key;
        coopMatLoadNV(key, key_tile, block * 16u * KV_STRIDE + (score_part * DSP + 16u * f) / 8u,
                      KV_STRIDE, true);
        s = coopMatMulAddNV(query[f], key, s);
      }
      coopMatStoreNV(s, scores, score_part * 16u * S_STRIDE + block * 16u, S_STRIDE, false);
    }
    barrier();

    // The max moves only when a tile's exceeds it by more than
    // RESCALE_SLACK, so O is rescaled a few times per slice rather than
    // whenever the max rises; the probabilities stay below e^RESCALE_SLACK.
    if (softmax_head < heads) {
      float score[CPS];
      float tile_max = NOT_ATTENDED;
      UNROLL for (uint c = 0u; c < CPS; ++c) {
        const uint column = softmax_lane + SL * c;
        float dot = 0.0;
        UNROLL for (uint part = 0u; part < SD; ++part)
          dot += scores[(part * 16u + softmax_head) * S_STRIDE + column] +
                 scores[(part * 16u + 8u + softmax_head) * S_STRIDE + column] * (1.0 / Q_LOW);
        score[c] = column < count ? logit(dot) : NOT_ATTENDED;
        tile_max = max(tile_max, score[c]);
      }
      UNROLL for (uint d = 1u; d < SL; d <<= 1) tile_max = max(tile_max, subgroupShuffleXor(tile_max, d));
      float correction = 1.0;
      if (tile_max > running_max + RESCALE_SLACK) {
        if (running_max != MAX_SENTINEL) correction = exp(running_max - tile_max);
        running_max = tile_max;
      }
      running_sum *= correction;
      UNROLL for (uint c = 0u; c < CPS; ++c) {
        const uint column = softmax_lane + SL * c;
        const float p = exp(score[c] - running_max);
        const float high = f16_head(p);
        probabilities[softmax_head * P_STRIDE + column] = float16_t(high);
        probabilities[(8u + softmax_head) * P_STRIDE + column] = float16_t((p - high) * P_LOW);
        running_sum += p;
      }
      if (softmax_lane == 0u) row_scale[softmax_head] = correction;
    }
    if (ALTERNATELY) store_value_tile();  // K is no longer read
    barrier();
    if (ALTERNATELY && next < slice_end) load_value_tile(cache_head, next, min(TILE, slice_end - next));

    // Heads whose max moved: their rows of O *= correction. A fragment's
    // element order is opaque, so it goes through this subgroup's scratch
    // row-major, where element lane + 32 e sits in row lane / 16 + 2 e.
    if (subgroupMin(lane < heads ? row_scale[lane] : 1.0) < 1.0) {
      float factor[8];
      UNROLL for (uint e = 0u; e < 8u; ++e) {
        const uint head = (lane / 16u + 2u * e) % 8u;
        factor[e] = head < heads ? row_scale[head] : 1.0;
      }
      UNROLL for (uint f = 0u; f < OF; ++f) {
        coopMatStoreNV(acc[f], scores, scratch, 16u, false);
        sync_subgroup();
        UNROLL for (uint e = 0u; e < 8u; ++e) scores[scratch + lane + 32u * e] *= factor[e];
        sync_subgroup();
        coopMatLoadNV(acc[f], scores, scratch, 16u, false);
        sync_subgroup();
      }
    }

    // O += P V over this subgroup's dims.
    F16_TILE p[KB];
    UNROLL for (uint b = 0u; b < KB; ++b) coopMatLoadNV(p[b], probabilities, b * 16u, P_STRIDE, false);
    UNROLL for (uint f = 0u; f < OF; ++f)
      UNROLL for (uint b = 0u; b < KB; ++b) {
        F16_TILE value;
        coopMatLoadNV(value, VALUE_TILE, b * 16u * KV_STRIDE + (sg * DO + 16u * f) / 8u, KV_STRIDE,
                      false);
        acc[f] = coopMatMulAddNV(p[b], value, acc[f]);
      }
  }

  if (softmax_head < heads) {
    UNROLL for (uint d = 1u; d < SL; d <<= 1) running_sum += subgroupShuffleXor(running_sum, d);
    if (softmax_lane == 0u) {
      head_sum[softmax_head] = running_sum;
      head_max[softmax_head] = running_max;
    }
  }
  barrier();
  // Output row h = O[h] + O[8 + h] / P_LOW, row-major through the scratch.
  UNROLL for (uint f = 0u; f < OF; ++f) {
    coopMatStoreNV(acc[f], scores, scratch, 16u, false);
    sync_subgroup();
    UNROLL for (uint e = 0u; e < 4u; ++e) {
      const uint i = lane + 32u * e, head = i / 16u;
      if (head < heads)
        write_element(first_row + head, sg * DO + 16u * f + i % 16u,
                      scores[scratch + i] + scores[scratch + 128u + i] * (1.0 / P_LOW), head_sum[head]);
    }
    sync_subgroup();
  }
  if (tid < heads) write_statistics(first_row + tid, head_sum[tid], head_max[tid]);
}
)glsl";

}  // namespace detail

// The matrix kernel for head dim D with tile shape Tiles. Its tiles of K and
// V are staged as the engine's (f16_tile_glsl, padded rows), each loaded
// into registers while the previous one is computed on. Per tile: each
// subgroup's partial scores S = Q K^T (its column blocks, its part of the
// dims) to shared memory; the online softmax (SL lanes per head) sums the
// parts, writes the probabilities as f16 and each head's rescale factor;
// each subgroup rescales its O fragments when a head's max moved (rarely)
// and adds P V for its dims.
template <int D, decode_coopmat_tiles Tiles = decode_coopmat_tiles_for(D)>
struct decode_f16_coopmat {
  static constexpr std::uint32_t threads = Tiles.subgroups * decode_coopmat_lanes;
  static constexpr std::uint32_t blocks = Tiles.positions / 16;
  static constexpr std::uint32_t column_groups = Tiles.subgroups / Tiles.score_split;
  static constexpr std::uint32_t softmax_lanes =
      std::min({decode_coopmat_lanes, threads / max_decode_heads, Tiles.positions});
  static_assert(D >= 64 && D <= 512 && D % 16 == 0,
                "decode_f16_coopmat: head_dim must be a multiple of 16 in [64, 512]");
  static_assert(Tiles.positions == 16 || Tiles.positions == 32 || Tiles.positions == 64,
                "decode_f16_coopmat: positions per tile must be 16, 32 or 64");
  static_assert(Tiles.subgroups == 2 || Tiles.subgroups == 4 || Tiles.subgroups == 8,
                "decode_f16_coopmat: subgroups must be 2, 4 or 8");
  static_assert(Tiles.subgroups % Tiles.score_split == 0 && blocks % column_groups == 0,
                "decode_f16_coopmat: score_split must divide the subgroups, and the column "
                "groups left the tile's 16-position blocks");
  static_assert(D / Tiles.score_split % 16 == 0 && D / Tiles.subgroups % 16 == 0,
                "decode_f16_coopmat: each subgroup's dims must be whole 16-wide fragments");
  static_assert(decode_coopmat_shared_bytes(D, Tiles) <= targets::nvidia.shared_memory_bytes,
                "decode_f16_coopmat: the tiles must fit the NVIDIA target's shared memory");

  static constexpr auto name = [] {
    if constexpr (Tiles == decode_coopmat_tiles_for(D))
      return tessel::name("decode_f16_coopmat", "d", D);
    else
      return tessel::name("decode_f16_coopmat", "d", D, "n", Tiles.positions, "w", Tiles.subgroups,
                          "s", Tiles.score_split, "a", Tiles.alternately ? 1 : 0);
  }();
  using params = VecF16Params;
  using bindings = typename decode_f16<D>::bindings;
  using constants = tessel::constants<spec<"softcap", float, 0, 0.0f>,
                                      spec<"heads", std::uint32_t, 1, max_decode_heads>>;
  using geometry = tessel::geometry<
      constant<"D", static_cast<std::uint32_t>(D)>, constant<"TILE", Tiles.positions>,
      constant<"KB", blocks>, constant<"ROW_CHUNKS", static_cast<std::uint32_t>(D / 8)>,
      constant<"THREADS", threads>, constant<"SD", Tiles.score_split>,
      constant<"DSP", D / Tiles.score_split>, constant<"QF", D / Tiles.score_split / 16>,
      constant<"CBS", blocks / column_groups>, constant<"DO", D / Tiles.subgroups>,
      constant<"OF", D / Tiles.subgroups / 16>, constant<"S_STRIDE", Tiles.positions + 4>,
      constant<"SCORE_FLOATS", decode_coopmat_score_floats(Tiles)>,
      constant<"P_STRIDE", Tiles.positions + 8>, constant<"SL", softmax_lanes>,
      constant<"CPS", Tiles.positions / softmax_lanes>, constant<"RESCALE_SLACK", 5.5f>,
      constant<"Q_LOW", 4096.0f>, constant<"P_LOW", 65536.0f>,
      constant<"ALTERNATELY", Tiles.alternately>,
      constant<"KV_STRIDE", static_cast<std::uint32_t>(D / 8 + 1)>,
      constant<"SUBGROUP_SCOPE", 3>>;  // gl_ScopeSubgroup
  using workgroup = tessel::workgroup<decode_coopmat_lanes, Tiles.subgroups>;
  static constexpr extension extensions =
      extension::cooperative_matrix_nv | extension::explicit_float16 | extension::subgroup_basic |
      extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;
  static constexpr std::uint32_t shared_bytes(const target&) {
    return decode_coopmat_shared_bytes(D, Tiles);
  }
  static std::string body(const target&) {
    return "#define UNROLL [[unroll]]\n" + std::string(decode_helpers_glsl) +
           detail::decode_coopmat_loaders(Tiles.alternately) +
           std::string(detail::decode_coopmat_main);
  }
};

// Tile shapes besides the default that bench/decode_bench times (--sweep).
template <int D>
inline constexpr auto decode_coopmat_sweep_tiles = [] {
  using tiles = decode_coopmat_tiles;
  if constexpr (D == 512)
    return std::array{tiles{32, 8, 4, true}, tiles{32, 4, 4, true}, tiles{16, 8, 8, true},
                      tiles{16, 4, 4, false}};
  else if constexpr (D == 256)
    return std::array{tiles{32, 8, 4, false}, tiles{32, 4, 2, false}, tiles{32, 4, 4, true}};
  else
    return std::array{tiles{64, 4, 2, true}, tiles{32, 4, 2, true}, tiles{64, 4, 1, false},
                      tiles{32, 2, 1, false}};
}();

using decode_f16_coopmat_variants = variant_list<decode_f16_coopmat<64>, decode_f16_coopmat<128>,
                                                 decode_f16_coopmat<256>, decode_f16_coopmat<512>>;

// Whether record_decode_f16 runs the matrix kernel: where the device has
// it, for 4 or more query heads per workgroup. With 1 or 2 the engine's
// kernels read each staged row at most twice and were as fast or faster on
// the H100 (docs/perf/decode_f16.md).
inline bool decode_f16_runs_coopmat(const target& t, std::uint32_t head_dim,
                                    std::uint32_t heads_per_group) {
  return heads_per_group >= 4 && decode_f16_coopmat_supported(t, head_dim);
}

namespace detail {
inline constexpr std::string_view decode_op = "decode_f16";

// The 36-byte block every f16 decode kernel reads, from validated arguments.
inline VecF16Params vec_f16_params(const decode_args& a) {
  VecF16Params params{};
  fill_decode_fields(params, a);
  return params;
}

// The keys and values hold the whole cache of every sequence.
inline void require_f16_cache(const decode_args& a, const vk::buffer<f16>& keys,
                              const vk::buffer<f16>& values) {
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * a.head_dim;
  require_elements(decode_op, "keys", keys.size(), cache);
  require_elements(decode_op, "values", values.size(), cache);
}

// Validates the arguments of an f16 decode call and chooses its split for
// the engine's kernels or the matrix kernel (which rounds NWG down).
inline decode_plan plan_decode_f16(const vk::device_traits& device, const decode_args& a,
                                   bool coopmat) {
  constexpr std::string_view op = decode_op;
  const decode_plan plan = plan_decode(op, device, a, std::uint64_t{4} * a.head_dim,
                                       coopmat ? nwg_rounding::down : nwg_rounding::up);
  require_32bit_indexable(
      op, "keys",
      checked_product(op, "cache size", {a.batch, a.num_kv_heads, a.kv_capacity, a.head_dim}));
  return plan;
}
}  // namespace detail

// Validates the arguments of an f16 decode call and chooses its split: the
// plan of the kernel record_decode_f16 runs.
inline decode_plan plan_decode_f16(const vk::device_traits& device, const decode_args& a) {
  const decode_plan engine = detail::plan_decode_f16(device, a, false);
  if (!decode_f16_runs_coopmat(device.target(), a.head_dim, engine.heads_per_group)) return engine;
  return detail::plan_decode_f16(device, a, true);
}

// Records one decode step with the variant decode_f16<D, T>: out =
// attention(q, keys, values). The plan's heads per group must be T.heads
// (pass heads_per_group = T.heads). `scratch` holds the partials when the
// plan splits heads (plan.scratch_floats > 0; it may be larger) and may be
// null otherwise. Everything is validated before anything is recorded.
template <int D, decode_tiling T>
void record_decode_f16_tiled(vk::recorder& rec, const vk::buffer<float>& q,
                             const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                             const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                             const decode_args& a) {
  constexpr std::string_view op = detail::decode_op;
  require(a.head_dim == D, op, "head_dim", a.head_dim,
          "must equal the variant's " + std::to_string(D));
  const decode_plan plan = detail::plan_decode_f16(rec.device(), a, false);
  require(plan.heads_per_group == static_cast<std::uint32_t>(T.heads), op, "heads_per_group",
          plan.heads_per_group, "must equal the variant's " + std::to_string(T.heads));
  validate_decode_buffers(op, a, plan, q, out, scratch);
  detail::require_f16_cache(a, keys, values);

  const VecF16Params params = detail::vec_f16_params(a);
  const vk::spec_value spec[] = {vk::spec_value::of_float(0, a.softcap)};
  rec.dispatch<decode_f16<D, T>>(params, spec, plan.grid, q, keys, values,
                                 decode_destination(plan, out, scratch));
  record_decode_merge<D>(rec, a, plan, scratch, out);
}

// Records one decode step with the matrix kernel decode_f16_coopmat<D,
// Tiles>, any heads per group of the plan; arguments and validation as
// record_decode_f16_tiled, plus the device check.
template <int D, decode_coopmat_tiles Tiles = decode_coopmat_tiles_for(D)>
void record_decode_f16_coopmat(vk::recorder& rec, const vk::buffer<float>& q,
                               const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                               const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                               const decode_args& a) {
  constexpr std::string_view op = detail::decode_op;
  using kernel = decode_f16_coopmat<D, Tiles>;
  require(a.head_dim == D, op, "head_dim", a.head_dim,
          "must equal the variant's " + std::to_string(D));
  const decode_plan plan = detail::plan_decode_f16(rec.device(), a, true);
  validate_decode_buffers(op, a, plan, q, out, scratch);
  detail::require_f16_cache(a, keys, values);
  require(decode_f16_coopmat_supported(rec.target(), D) &&
              kernel::shared_bytes(rec.target()) <= rec.target().shared_memory_bytes,
          op, "device", std::string(rec.target().name),
          "must have NV cooperative matrices of 16x16x16 f16 x f16 -> f32, 32-lane subgroups and " +
              std::to_string(kernel::shared_bytes(rec.target())) +
              " bytes of shared memory for the cooperative-matrix kernel");

  const VecF16Params params = detail::vec_f16_params(a);
  const vk::spec_value spec[] = {vk::spec_value::of_float(0, a.softcap), {1, plan.heads_per_group}};
  rec.dispatch<kernel>(params, spec, plan.grid, q, keys, values,
                       decode_destination(plan, out, scratch));
  record_decode_merge<D>(rec, a, plan, scratch, out);
}

// The same with the matrix kernel where decode_f16_runs_coopmat says so,
// else the engine's default tiling for the planned heads per group; any
// multiple of 8 as D.
template <int D>
void record_decode_f16_for(vk::recorder& rec, const vk::buffer<float>& q,
                           const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                           const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                           const decode_args& a) {
  decode_args planned = a;
  planned.heads_per_group = plan_decode_f16(rec.device(), a).heads_per_group;
  if constexpr (D == 64 || D == 128 || D == 256 || D == 512) {
    if (decode_f16_runs_coopmat(rec.target(), D, planned.heads_per_group)) {
      record_decode_f16_coopmat<D>(rec, q, keys, values, out, scratch, a);
      return;
    }
  }
  detail::with_heads(planned.heads_per_group, [&](auto heads) {
    record_decode_f16_tiled<D, default_decode_tiling(decltype(heads)::value)>(
        rec, q, keys, values, out, scratch, planned);
  });
}

// The same for a run-time head dim among the shipped variants (64, 128, 256
// and 512).
inline void record_decode_f16(vk::recorder& rec, const vk::buffer<float>& q,
                              const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                              const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                              const decode_args& a) {
  with_head_dim<64, 128, 256, 512>(detail::decode_op, a.head_dim, [&](auto d) {
    record_decode_f16_for<decltype(d)::value>(rec, q, keys, values, out, scratch, a);
  });
}

}  // namespace tessel::kernels
