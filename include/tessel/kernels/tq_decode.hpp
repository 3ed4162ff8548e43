// Decode attention over TurboQuant-compressed KV caches (KERNELS.md sections
// 9, 10, 11.1 and 12.8): the attention of decode_f16.hpp, with K and V read
// from the caches tq_encode writes (format in turboquant.hpp).
//
// Three ops, one per cache layout:
//   tq_decode         4-bit K and V (nibbles), parameter block TqParams (48 B);
//   tq_hb_decode      5-, 6- or 8-bit K and V (bytes), TqHbParams (60 B);
//   tq_hybrid_decode  f16 K and 5/6/8-bit or f16 V, TqHbParams (60 B).
// Each dequantizes a code as centroid * (N / sqrt(D)), resp. n_b /
// scale_factor_d512 at D = 512, and attends exactly as decode_f16 does:
// logical positions, ring buffers, causal and sliding-window masks, GQA,
// batches, softcap, NWG slices merged by decode_reduce.
//
// The rotation contract (KERNELS.md 12.8 and Q13): the caches hold rows in
// the basis they were encoded in, rotated by R(x) = H(s * x) or not
// (tq_encode_args::rotate). Since R is orthogonal, <R q, R k> = <q, k> and
// sum_j w_j R(v_j) = R(sum_j w_j v_j), so
//   - q must be in K's basis: rotated iff K was. Either the caller rotates
//     it (fwht rotate) or fuse_fwht_pre = true makes the kernel rotate the
//     raw q itself;
//   - the output is in V's basis: rotated iff V was. unrotate_output = true
//     makes the op return it in the natural basis (the fused reduce +
//     inverse rotation when NWG > 1, fwht unrotate after a single slice),
//     else the caller applies fwht unrotate.
// The seed's hybrid path writes K raw (f16) and V without rotation: raw q,
// raw output, both flags false.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/dsl/tq_codebooks.hpp"
#include "tessel/kernels/decode_attention.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/turboquant.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

enum class tq_decode_op : std::uint32_t { nibble = 0, byte = 1, hybrid = 2 };

constexpr std::string_view op_name(tq_decode_op op) {
  return op == tq_decode_op::nibble ? "tq_decode"
         : op == tq_decode_op::byte ? "tq_hb_decode"
                                    : "tq_hybrid_decode";
}

// One decode step over TurboQuant caches: the attention shape of
// decode_args (batch, heads, kv_seq_len, kv_capacity, mask, window,
// ring_start, scale, softcap, nwg, heads_per_group) and the cache's rules.
// Buffers: q and out f32 [batch, num_heads, head_dim]; a quantized cache is
// codes + norms in the format tq_cache_format{batch * num_kv_heads,
// kv_capacity, head_dim, bits} (sequence b's KV head h is cache head
// b * num_kv_heads + h); an f16 cache is [batch, num_kv_heads, kv_capacity,
// head_dim] as for decode_f16.
struct tq_decode_args : decode_args {
  // Code width of the quantized caches: 4 for tq_decode; 5, 6 or 8 for
  // tq_hb_decode and for the hybrid's quantized V.
  std::uint32_t bits = 4;
  bool values_f16 = false;       // tq_hybrid_decode only: V is an f16 cache
  float scale_factor_d512 = 0;   // the encoder's; D = 512 only; 0 means 1.0
  bool fuse_fwht_pre = false;    // q is raw and the kernel rotates it (K was rotated)
  bool unrotate_output = false;  // return the output unrotated (V was rotated)
  // Subgroups sharing the positions of each query head (the seed's NSG):
  // 1, 2 or 4; 0 takes default_decode_tiling's. A workgroup has
  // heads_per_group * nsg subgroups, at most 16.
  std::uint32_t nsg = 0;
};

// The engine tiling of a call with `heads` query heads per workgroup: nsg
// subgroups sharing each head's positions, or when nsg is 0 the engine's
// default, except 4 for two heads (docs/perf/tq_decode.md: four splits
// were the fastest or tied at GQA 2 for every format).
constexpr decode_tiling tq_decode_tiling(std::uint32_t heads, std::uint32_t nsg) {
  decode_tiling t = default_decode_tiling(static_cast<int>(heads));
  if (nsg != 0)
    t.position_splits = static_cast<int>(nsg);
  else if (heads == 2)
    t.position_splits = 4;
  return t;
}

// Positions per NWG slice the host ops aim for: the decoded tile costs
// more arithmetic per byte than f16 rows, so the split follows positions,
// not bytes (64 slices of a 32768-position cache beat 32 and 128 at both
// of docs/perf/tq_decode.md's shapes).
inline constexpr std::uint32_t tq_slice_positions = 512;

// The format of one quantized cache of a call (K or V).
constexpr tq_cache_format tq_decode_cache_format(const tq_decode_args& a) {
  return {a.batch * a.num_kv_heads, a.kv_capacity, a.head_dim, a.bits};
}

// Whether the op reads K (V) as codes and norms rather than f16.
constexpr bool tq_quantized_keys(tq_decode_op op) {
  return op != tq_decode_op::hybrid;
}
constexpr bool tq_quantized_values(tq_decode_op op, const tq_decode_args& a) {
  return op != tq_decode_op::hybrid || !a.values_f16;
}

// Bytes one position of one KV head takes in the caches a call reads (K
// and V): what the split policy sizes slices by.
constexpr std::uint64_t tq_decode_position_bytes(tq_decode_op which, const tq_decode_args& a) {
  return kv_bytes_per_token(1, a.head_dim, tq_quantized_keys(which) ? a.bits : 16,
                            tq_quantized_values(which, a) ? a.bits : 16);
}

// The TurboQuant rules of a call (the attention shape is plan_decode's).
inline void validate_tq_rules(tq_decode_op which, const tq_decode_args& a) {
  const std::string_view op = op_name(which);
  require_one_of(op, "head_dim", a.head_dim, {64, 128, 256, 512});
  if (which == tq_decode_op::nibble) {
    require(a.bits == 4, op, "bits", a.bits, "must be 4 (5, 6 and 8 are tq_hb_decode's)");
  } else if (tq_quantized_values(which, a)) {
    require_one_of(op, "bits", a.bits, {5, 6, 8});
  }
  require(which == tq_decode_op::hybrid || !a.values_f16, op, "values_f16", 1,
          "is for tq_hybrid_decode only");
  require_one_of(op, "nsg", a.nsg, {0, 1, 2, 4});
  validate_tq_scale_factor(op, a.scale_factor_d512);
  const std::uint64_t cache_heads =
      checked_product(op, "batch * num_kv_heads", {a.batch, a.num_kv_heads});
  require(cache_heads <= UINT32_MAX, op, "batch * num_kv_heads", cache_heads, "must fit 32 bits");
  if (tq_quantized_keys(which) || tq_quantized_values(which, a))
    validate_tq_cache_format(op, tq_decode_cache_format(a));
  // The hybrid's f16 K (and f16 V, of the same size).
  if (which == tq_decode_op::hybrid)
    require_32bit_indexable(
        op, "keys",
        checked_product(op, "f16 cache size", {cache_heads, a.kv_capacity, a.head_dim}));
}

// Validates everything but the buffers and chooses the split.
inline decode_plan plan_tq_decode(const vk::device_traits& device, tq_decode_op which,
                                  const tq_decode_args& a) {
  const std::string_view op = op_name(which);
  validate_tq_rules(which, a);
  tq_decode_args split = a;
  if (a.nwg == 0)
    split.nwg = static_cast<std::uint32_t>(std::clamp<std::uint64_t>(
        std::bit_ceil((std::uint64_t{detail::attended_positions(a)} + tq_slice_positions - 1) /
                      tq_slice_positions),
        1, max_decode_nwg));
  const decode_plan plan = plan_decode(op, device, split, tq_decode_position_bytes(which, a));
  const decode_tiling tiling = tq_decode_tiling(plan.heads_per_group, a.nsg);
  require(tiling.subgroups() <= 16, op, "nsg", a.nsg,
          "times heads_per_group = " + std::to_string(plan.heads_per_group) + " must be <= 16");
  return plan;
}

// The same rules without a device (the reference's): only the split the
// policy would choose depends on the device, and it is discarded.
inline void validate_tq_decode(tq_decode_op which, const tq_decode_args& a) {
  plan_tq_decode(vk::device_traits{}, which, a);
}

// Element counts of the buffers of a call: q, out, and for K and V either
// codes (uint32 words) and norms (floats), or f16 elements with norms 0.
struct tq_decode_sizes {
  std::uint64_t q = 0, out = 0;
  std::uint64_t keys = 0, key_norms = 0;
  std::uint64_t values = 0, value_norms = 0;
};

// The buffer rules: exact element counts for the shape.
inline void validate_tq_decode_buffers(tq_decode_op which, const tq_decode_args& a,
                                       const tq_decode_sizes& sizes) {
  const std::string_view op = op_name(which);
  const std::uint64_t rows = std::uint64_t{a.batch} * a.num_heads * a.head_dim;
  require_elements(op, "q", sizes.q, rows);
  require_elements(op, "out", sizes.out, rows);
  const tq_cache_format format = tq_decode_cache_format(a);
  const std::uint64_t f16_cache = std::uint64_t{format.num_kv_heads} * a.kv_capacity * a.head_dim;
  if (tq_quantized_keys(which)) {
    require_elements(op, "key_codes", sizes.keys, tq_code_words(format));
    require_elements(op, "key_norms", sizes.key_norms, tq_norm_count(format));
  } else {
    require_elements(op, "keys", sizes.keys, f16_cache);
  }
  if (tq_quantized_values(which, a)) {
    require_elements(op, "value_codes", sizes.values, tq_code_words(format));
    require_elements(op, "value_norms", sizes.value_norms, tq_norm_count(format));
  } else {
    require_elements(op, "values", sizes.values, f16_cache);
  }
}

namespace detail {
// The fields TqParams and TqHbParams share: those of VecF16Params, softcap,
// nwg and scale_factor_d512.
template <class Block>
void fill_tq_fields(Block& block, const tq_decode_args& a, std::uint32_t nwg) {
  fill_decode_fields(block, a);
  block.softcap = a.softcap;
  block.nwg = nwg;
  block.scale_factor_d512 = tq_resolve_scale_factor(a.scale_factor_d512);
}
}  // namespace detail

// The parameter blocks, filled from validated arguments. The kernels see
// the resolved scale and scale_factor_d512 (never 0: question Q10) and the
// softcap they apply (the seed declared it and never applied it, Q7).
inline TqParams tq_params(const tq_decode_args& a, std::uint32_t nwg) {
  TqParams params{};
  detail::fill_tq_fields(params, a, nwg);
  return params;
}

// codebook_bits is 0 for the hybrid's f16 V (no codebook); nsg is the
// subgroups sharing each head's positions.
inline TqHbParams tq_hb_params(const tq_decode_args& a, std::uint32_t nwg,
                               std::uint32_t heads_per_group) {
  TqHbParams params{};
  detail::fill_tq_fields(params, a, nwg);
  params.codebook_bits = a.values_f16 ? 0u : a.bits;
  params.fuse_fwht_pre = a.fuse_fwht_pre ? 1u : 0u;
  params.nsg = static_cast<std::uint32_t>(tq_decode_tiling(heads_per_group, a.nsg).position_splits);
  return params;
}

// --- tile loaders -------------------------------------------------------------
//
// A decode kernel walks its positions in tiles of up to TILE consecutive
// logical positions of one KV head: every invocation loads its share of the
// next tile into registers (load_*), writes it to shared memory between
// barriers (store_*), and the kernel reads each staged row in chunks of 8
// floats (*_chunk). For a quantized cache the registers hold the packed code
// words (16-byte loads, a quarter of f16's bytes at 4 bits) and one norm per
// 16-byte load; the store decodes them once for the whole workgroup, level *
// N / sqrt(D) or level * n_b / scale_factor_d512, into rows of f32 or f16
// (tq_staging) that the query heads then read as decode_f16 reads its tile,
// with no codebook lookup per head. The codebook sits in shared memory
// (dynamically indexed private arrays are slow on GPUs): the first load
// copies it, and the engine's barrier before the first store orders that
// copy before the reads. Rows of a tile past `count` repeat its last row:
// finite, and no load is conditional. Nothing computed from a load is
// needed before the store, so the next tile's reads stay in flight while
// the staged tile is used.
//
// The text goes after the definitions of D, ROW_CHUNKS (D / 8), TILE,
// THREADS (invocations per workgroup) and UNROLL (the engine's), the
// parameter block (kv_capacity, scale_factor_d512), the buffers
// <cache>_codes (uint, with a uvec4 wide view) and <cache>_norms,
// `uint cache_slot(uint position)` (the ring mapping), the tq_unpack
// snippet and tq_tile_levels_glsl. For cache "key" (and likewise "value"):
//   void load_key_tile(uint cache_head, uint first, uint count)   count in 1..TILE
//   void store_key_tile()                 between barriers, after load_key_tile
//   void key_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
//        floats 8 chunk .. 8 chunk + 7 of staged row `row`

// How decoded rows are staged: f32 holds level * scale exactly as the
// reference's f32 product; f16 rounds it to half precision (relative error
// <= 2^-11 to nearest, 2^-10 toward zero: an f16 cache's), half the
// shared-memory bytes the heads read and write.
enum class tq_staging : std::uint32_t { f32 = 32, f16 = 16 };

// What the shipped variants use (docs/perf/tq_decode.md): f16 rows, and
// tiles of at most 16 positions, so that several workgroups share a
// compute unit (16, 32 and 64 tied or 16 won in the sweep).
inline constexpr tq_staging tq_default_staging = tq_staging::f16;
inline constexpr std::uint32_t tq_default_max_tile = 16;

// uvec4 of one staged row: the f32 rows hold each chunk's low four floats
// in the row's first half and its high four in the second, so the lanes
// reading consecutive chunks read consecutive 16 bytes.
constexpr std::uint32_t tq_staged_row_vecs(std::uint32_t head_dim, tq_staging s) {
  return head_dim * static_cast<std::uint32_t>(s) / 128;
}

// The shared codebook of up to `levels` entries: stage_tq_levels(bits)
// (every invocation; only the first call copies; a barrier before the
// first read) and tq_tile_levels(bits, packed), the levels of the four
// codes in the low 4 * storage bits of `packed`.
inline std::string tq_tile_levels_glsl(std::uint32_t levels) {
  return "const uint TQ_NORM_BLOCK = " + std::to_string(tq_norm_block) + "u;\n" +
         "const uint TQ_NORMS_PER_ROW = D > TQ_NORM_BLOCK ? D / TQ_NORM_BLOCK : 1u;\n" +
         "shared float tq_levels[" + std::to_string(levels) + "];\n" +
         R"glsl(bool tq_levels_staged = false;

void stage_tq_levels(uint bits) {
  if (tq_levels_staged) return;
  for (uint i = gl_LocalInvocationIndex; i < (1u << bits); i += THREADS)
    tq_levels[i] = tq_centroid(bits, i);
  tq_levels_staged = true;
}

vec4 tq_tile_levels(uint bits, uint packed) {
  return vec4(tq_levels[tq_word_code(packed, bits, 0u)], tq_levels[tq_word_code(packed, bits, 1u)],
              tq_levels[tq_word_code(packed, bits, 2u)], tq_levels[tq_word_code(packed, bits, 3u)]);
}
)glsl";
}

// The tile of one quantized cache: `cache` is "key" or "value", `bits` a
// GLSL expression of the code width (a literal or a specialization
// constant) whose codes take `storage_bits` (4 or 8) each, staged as
// `staging`. The rows are staged in the shared array `<cache>_tile`, or in
// `shared_tile` (TILE * tq_staged_row_vecs(D, staging) uvec4 or more) when
// the includer declares one to share it with another loader.
inline std::string tq_tile_glsl(std::string_view cache_name, std::string_view bits_expr,
                                std::uint32_t storage_bits, tq_staging staging,
                                std::string_view shared_tile = {}) {
  const bool f16_rows = staging == tq_staging::f16;
  std::string text = R"glsl(
const uint CACHE_tile_VECS = D * STORAGEu / 128u;  // uvec4 of codes per row
const uint CACHE_tile_ROW_VECS = D * STAGEDu / 128u;  // uvec4 of a staged row
const uint CACHE_tile_STORES = CACHE_tile_ROW_VECS / CACHE_tile_VECS;  // per uvec4 of codes
const uint CACHE_tile_LOADS = (TILE * CACHE_tile_VECS + THREADS - 1u) / THREADS;
)glsl";
  if (shared_tile.empty()) text += "shared uvec4 CACHE_tile[TILE * CACHE_tile_ROW_VECS];\n";
  text += R"glsl(uvec4 CACHE_tile_in[CACHE_tile_LOADS];
float CACHE_tile_norm_in[CACHE_tile_LOADS];

void load_CACHE_tile(uint cache_head, uint first, uint count) {
  stage_tq_levels(BITS);
  const uint head_base = cache_head * params.kv_capacity;
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = min(gl_LocalInvocationIndex + i * THREADS, TILE * CACHE_tile_VECS - 1u);
    const uint row = min(at / CACHE_tile_VECS, count - 1u), vec = at % CACHE_tile_VECS;
    const uint slot = head_base + cache_slot(first + row);
    CACHE_tile_in[i] = CACHE_codes_wide[slot * CACHE_tile_VECS + vec];
    // The norm of the block this uvec4's codes belong to.
    CACHE_tile_norm_in[i] =
        CACHE_norms[slot * TQ_NORMS_PER_ROW + vec * (128u / STORAGEu) / TQ_NORM_BLOCK];
  }
}

void store_CACHE_tile() {
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = gl_LocalInvocationIndex + i * THREADS;
    if (at >= TILE * CACHE_tile_VECS) continue;
    const uvec4 words = CACHE_tile_in[i];
    const float scale = tq_value_scale(CACHE_tile_norm_in[i], D, params.scale_factor_d512);
    const uint row_base = (at / CACHE_tile_VECS) * CACHE_tile_ROW_VECS;
    const uint first_piece = (at % CACHE_tile_VECS) * CACHE_tile_STORES;
    // The 8 invocations of one 16-byte store phase start at different
    // pieces so that they write 8 different bank groups.
    const uint rotation = at / (8u / CACHE_tile_STORES);
    UNROLL for (uint k = 0u; k < CACHE_tile_STORES; ++k) {
      const uint piece = (k + rotation) % CACHE_tile_STORES;
      STORE_PIECE
    }
  }
}
)glsl";
  if (f16_rows) {
    // Piece p: chunk first_piece + p, 8 codes (one word of nibbles, two of bytes).
    text = replace_all(std::move(text), "STORE_PIECE", R"glsl(vec4 low, high;
      if (STORAGEu == 4u) {
        low = tq_tile_levels(4u, words[piece]) * scale;
        high = tq_tile_levels(4u, words[piece] >> 16) * scale;
      } else {
        low = tq_tile_levels(BITS, words[2u * piece]) * scale;
        high = tq_tile_levels(BITS, words[2u * piece + 1u]) * scale;
      }
      SHARED_TILE[row_base + first_piece + piece] = uvec4(packHalf2x16(low.xy), packHalf2x16(low.zw),
                                                          packHalf2x16(high.xy), packHalf2x16(high.zw));)glsl");
  } else {
    // Piece p: the low (p even) or high four floats of chunk (first_piece + p) / 2.
    text = replace_all(
        std::move(text), "STORE_PIECE",
        R"glsl(const uint packed = STORAGEu == 4u ? words[piece / 2u] >> (16u * (piece % 2u)) : words[piece];
      const uint at_piece = first_piece + piece;
      SHARED_TILE[row_base + (at_piece % 2u) * ROW_CHUNKS + at_piece / 2u] =
          floatBitsToUint(tq_tile_levels(BITS, packed) * scale);)glsl");
    text += R"glsl(
void CACHE_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high) {
  low = uintBitsToFloat(SHARED_TILE[row * CACHE_tile_ROW_VECS + chunk]);
  high = uintBitsToFloat(SHARED_TILE[row * CACHE_tile_ROW_VECS + ROW_CHUNKS + chunk]);
}
)glsl";
  }
  const std::string tile =
      shared_tile.empty() ? std::string(cache_name) + "_tile" : std::string(shared_tile);
  text = replace_all(std::move(text), "SHARED_TILE", tile);
  text = replace_all(std::move(text), "CACHE", cache_name);
  text = replace_all(std::move(text), "STORAGE", std::to_string(storage_bits));
  text =
      replace_all(std::move(text), "STAGED", std::to_string(static_cast<std::uint32_t>(staging)));
  text = replace_all(std::move(text), "BITS", bits_expr);
  return f16_rows ? text + f16_tile_chunk_glsl(cache_name, tile) : text;
}

// --- kernels -------------------------------------------------------------------

// The decode kernel of op `Op` on the decode engine, for head dim D, the
// engine tiling T, quantized rows staged as S and tiles of at most MaxTile
// positions (fewer than the engine's 64 leave room in shared memory for
// more workgroups per compute unit). Specialization constants:
// softcap (id 0, the engine's), codebook_bits (id 1: the byte width, 5, 6
// or 8; tq_hb_decode and the hybrid's V), values_f16 (id 2, the hybrid's V
// type) and fuse_fwht_pre (id 3: the engine rotates each query row in
// registers first).
template <int D, decode_tiling T, tq_decode_op Op, tq_staging S = tq_default_staging,
          std::uint32_t MaxTile = tq_default_max_tile>
struct tq_decode_kernel {
  static_assert(D >= 64 && D <= 512 && (D & (D - 1)) == 0,
                "tq_decode: head_dim must be a power of two in [64, 512]");
  using engine = decode_engine<D, T>;
  static constexpr bool hybrid = Op == tq_decode_op::hybrid;
  static constexpr auto name = [] {
    if constexpr (S == tq_default_staging && MaxTile == tq_default_max_tile)
      return tessel::name(op_name(Op), "d", D, "h", T.heads, "r", T.heads_per_subgroup, "p",
                          T.position_splits);
    else
      return tessel::name(op_name(Op), "d", D, "h", T.heads, "r", T.heads_per_subgroup, "p",
                          T.position_splits, "s", static_cast<int>(S), "t", MaxTile);
  }();
  using params = std::conditional_t<Op == tq_decode_op::nibble, TqParams, TqHbParams>;
  using bindings = std::conditional_t<
      hybrid,
      tessel::bindings<in<"q", float>, in<"keys", f16, vec<std::uint32_t, 4>>,
                       in<"value_codes", std::uint32_t, vec<std::uint32_t, 4>>,
                       in<"value_norms", float>, in<"values", f16, vec<std::uint32_t, 4>>,
                       out<"dst", float>>,
      tessel::bindings<in<"q", float>, in<"key_codes", std::uint32_t, vec<std::uint32_t, 4>>,
                       in<"key_norms", float>,
                       in<"value_codes", std::uint32_t, vec<std::uint32_t, 4>>,
                       in<"value_norms", float>, out<"dst", float>>>;
  using constants =
      tessel::constants<spec<"softcap", float, 0, 0.0f>,
                        spec<"codebook_bits", std::uint32_t, 1, 8u>,
                        spec<"values_f16", bool, 2, false>, spec<"fuse_fwht_pre", bool, 3, false>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>>;
  using workgroup = tessel::workgroup<lanes{engine::subgroups}>;
  using snippets = snippet_list<snippets::tq_unpack, snippets::hadamard_signs>;
  static constexpr extension extensions =
      extension::subgroup_basic | extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;

  static constexpr std::uint32_t storage_bits = Op == tq_decode_op::nibble ? 4 : 8;
  static constexpr std::uint32_t levels = 1u << storage_bits;
  // Bytes of one position's K or V as loaded (codes and one norm per 16
  // bytes of codes, or f16) and as staged (decoded rows).
  static constexpr std::uint32_t quantized_loaded_bytes = D * storage_bits / 8 * (16 + 4) / 16;
  static constexpr std::uint32_t quantized_staged_bytes = 16 * tq_staged_row_vecs(D, S);
  static constexpr std::uint32_t f16_row_bytes = 2 * D;
  static constexpr std::uint32_t loaded_row_bytes =
      hybrid ? f16_row_bytes + std::max(f16_row_bytes, quantized_loaded_bytes)
             : 2 * quantized_loaded_bytes;
  // The hybrid's V tile holds f16 rows or decoded rows in the same array.
  static constexpr std::uint32_t value_row_bytes =
      hybrid ? std::max(f16_row_bytes, quantized_staged_bytes) : quantized_staged_bytes;
  static constexpr std::uint32_t row_bytes =
      (hybrid ? f16_row_bytes : quantized_staged_bytes) + value_row_bytes;
  // The codebook's bytes spread over the smallest tile's rows, so the
  // engine sizes tiles with room for it.
  static constexpr std::uint32_t tiling_row_bytes(const target& t) {
    const std::uint32_t smallest = engine::rows_per_step(t) * T.position_splits;
    return row_bytes + (levels * 4 + smallest - 1) / smallest;
  }
  static constexpr std::uint32_t tile_positions(const target& t) {
    return engine::tile_positions(t, tiling_row_bytes(t), loaded_row_bytes, MaxTile);
  }
  static constexpr std::uint32_t shared_bytes(const target& t) {
    return engine::engine_bytes() + tile_positions(t) * row_bytes + levels * 4;
  }

  static std::string body(const target& t) {
    std::string text = engine::glsl(t, tiling_row_bytes(t), true, loaded_row_bytes, MaxTile) +
                       tq_tile_levels_glsl(levels);
    if constexpr (Op == tq_decode_op::nibble) {
      text += tq_tile_glsl("key", "4u", 4, S) + tq_tile_glsl("value", "4u", 4, S);
    } else if constexpr (Op == tq_decode_op::byte) {
      text +=
          tq_tile_glsl("key", "codebook_bits", 8, S) + tq_tile_glsl("value", "codebook_bits", 8, S);
    } else {
      text += f16_tile_glsl("key", "keys") + "\nshared uvec4 hybrid_value_tile[TILE * " +
              std::to_string(value_row_bytes / 16) + "u];\n" +
              tq_tile_glsl("value", "codebook_bits", 8, S, "hybrid_value_tile") +
              f16_tile_glsl("value_f16", "values", "hybrid_value_tile");
    }
    return text + std::string(hybrid ? hybrid_hooks : decode_key_value_hooks);
  }

  static constexpr std::string_view hybrid_hooks = R"glsl(
void load_tile(uint sequence, uint kv_head, uint first, uint count) {
  const uint cache_head = sequence * params.num_kv_heads + kv_head;
  load_key_tile(cache_head, first, count);
  if (values_f16)
    load_value_f16_tile(cache_head, first, count);
  else
    load_value_tile(cache_head, first, count);
}

void store_tile() {
  store_key_tile();
  if (values_f16)
    store_value_f16_tile();
  else
    store_value_tile();
}

void key_chunk(uint row, uint chunk, out vec4 low, out vec4 high) { key_tile_chunk(row, chunk, low, high); }
void value_chunk(uint row, uint chunk, out vec4 low, out vec4 high) {
  if (values_f16)
    value_f16_tile_chunk(row, chunk, low, high);
  else
    value_tile_chunk(row, chunk, low, high);
}
)glsl";
};

// The shipped variants: every head dim, every head count with its default
// tiling.
template <tq_decode_op Op, int D>
using tq_decode_head_variants = variant_list<tq_decode_kernel<D, tq_decode_tiling(1, 0), Op>,
                                             tq_decode_kernel<D, tq_decode_tiling(2, 0), Op>,
                                             tq_decode_kernel<D, tq_decode_tiling(4, 0), Op>,
                                             tq_decode_kernel<D, tq_decode_tiling(8, 0), Op>>;
template <tq_decode_op Op>
using tq_decode_op_variants =
    join_variants_t<tq_decode_head_variants<Op, 64>, tq_decode_head_variants<Op, 128>,
                    tq_decode_head_variants<Op, 256>, tq_decode_head_variants<Op, 512>>;
using tq_decode_variants = join_variants_t<tq_decode_op_variants<tq_decode_op::nibble>,
                                           tq_decode_op_variants<tq_decode_op::byte>,
                                           tq_decode_op_variants<tq_decode_op::hybrid>>;

// --- host ops --------------------------------------------------------------------

// The buffers of one quantized cache.
struct tq_cache_buffers {
  const vk::buffer<std::uint32_t>* codes = nullptr;
  const vk::buffer<float>* norms = nullptr;
};

namespace detail {

// Calls f(std::integral_constant<int, P>{}) for the position splits P == nsg
// resolved for `heads` (default_decode_tiling's when nsg is 0).
template <class F>
void with_position_splits(std::uint32_t heads, std::uint32_t nsg, F&& f) {
  const int splits = tq_decode_tiling(heads, nsg).position_splits;
  if (splits == 1) f(std::integral_constant<int, 1>{});
  if (splits == 2) f(std::integral_constant<int, 2>{});
  if (splits == 4) f(std::integral_constant<int, 4>{});
}

// One decode step of op `Op` at head dim D: validates
// everything, then records the kernel, then the merge of its slices
// (decode_reduce, or decode_reduce_unrotate when unrotate_output) or, with
// one slice and unrotate_output, fwht's unrotate of the output. Kernel<T>
// is the kernel run for the planned tiling T (one head per subgroup, nsg
// position splits): the shipped variant, or another one a benchmark
// compares.
template <tq_decode_op Op, int D, template <decode_tiling> class Kernel>
void record_tq_decode_with(vk::recorder& rec, const vk::buffer<float>& q,
                           const tq_cache_buffers& keys, const vk::buffer<f16>* f16_keys,
                           const tq_cache_buffers& values, const vk::buffer<f16>* f16_values,
                           const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                           const tq_decode_args& a) {
  constexpr std::string_view op = op_name(Op);
  const decode_plan plan = plan_tq_decode(rec.device(), Op, a);
  validate_decode_buffers(op, a, plan, q, out, scratch);
  const bool quantized_values = tq_quantized_values(Op, a);
  const auto size = [](const auto* buffer) -> std::uint64_t { return buffer ? buffer->size() : 0; };
  const auto require_buffer = [&](const void* buffer, std::string_view name) {
    require(buffer != nullptr, op, name, "none", "is required");
  };
  if (tq_quantized_keys(Op)) {
    require_buffer(keys.codes, "key_codes");
    require_buffer(keys.norms, "key_norms");
  } else {
    require_buffer(f16_keys, "keys");
  }
  if (quantized_values) {
    require_buffer(values.codes, "value_codes");
    require_buffer(values.norms, "value_norms");
  } else {
    require_buffer(f16_values, "values");
  }
  validate_tq_decode_buffers(
      Op, a,
      {q.size(), out.size(), tq_quantized_keys(Op) ? size(keys.codes) : size(f16_keys),
       size(keys.norms), quantized_values ? size(values.codes) : size(f16_values),
       size(values.norms)});

  const vk::spec_value spec[] = {vk::spec_value::of_float(0, a.softcap),
                                 {1, quantized_values ? a.bits : 8u},
                                 {2, a.values_f16 ? 1u : 0u},
                                 {3, a.fuse_fwht_pre ? 1u : 0u}};
  const vk::buffer<float>& dst = decode_destination(plan, out, scratch);
  detail::with_heads(plan.heads_per_group, [&](auto heads) {
    detail::with_position_splits(plan.heads_per_group, a.nsg, [&](auto splits) {
      constexpr decode_tiling tiling{decltype(heads)::value, 1, decltype(splits)::value};
      if constexpr (tiling.valid()) {
        using kernel = Kernel<tiling>;
        if constexpr (Op == tq_decode_op::nibble) {
          rec.dispatch<kernel>(tq_params(a, plan.nwg), spec, plan.grid, q, *keys.codes, *keys.norms,
                               *values.codes, *values.norms, dst);
        } else if constexpr (Op == tq_decode_op::byte) {
          rec.dispatch<kernel>(tq_hb_params(a, plan.nwg, plan.heads_per_group), spec, plan.grid, q,
                               *keys.codes, *keys.norms, *values.codes, *values.norms, dst);
        } else {
          rec.dispatch<kernel>(tq_hb_params(a, plan.nwg, plan.heads_per_group), spec, plan.grid, q,
                               *f16_keys, values.codes, values.norms, f16_values, dst);
        }
      }
    });
  });
  const auto rows = static_cast<std::uint32_t>(std::uint64_t{a.batch} * a.num_heads);
  if (!a.unrotate_output) {
    record_decode_merge<D>(rec, a, plan, scratch, out);
  } else if (plan.nwg > 1) {
    record_decode_reduce_unrotate_for<D>(rec, *scratch, out, rows, plan.nwg);
  } else {
    record_fwht(rec, out, rows, D, hadamard_mode::unrotate);
  }
}

template <tq_decode_op Op, int D>
struct tq_default_kernel {
  template <decode_tiling T>
  using kernel = tq_decode_kernel<D, T, Op>;
};

template <tq_decode_op Op, int D>
void record_tq_decode_for(vk::recorder& rec, const vk::buffer<float>& q,
                          const tq_cache_buffers& keys, const vk::buffer<f16>* f16_keys,
                          const tq_cache_buffers& values, const vk::buffer<f16>* f16_values,
                          const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                          const tq_decode_args& a) {
  record_tq_decode_with<Op, D, tq_default_kernel<Op, D>::template kernel>(
      rec, q, keys, f16_keys, values, f16_values, out, scratch, a);
}

template <tq_decode_op Op>
void record_tq_decode_op(vk::recorder& rec, const vk::buffer<float>& q,
                         const tq_cache_buffers& keys, const vk::buffer<f16>* f16_keys,
                         const tq_cache_buffers& values, const vk::buffer<f16>* f16_values,
                         const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                         const tq_decode_args& a) {
  validate_tq_rules(Op, a);
  with_head_dim<64, 128, 256, 512>(op_name(Op), a.head_dim, [&](auto d) {
    record_tq_decode_for<Op, decltype(d)::value>(rec, q, keys, f16_keys, values, f16_values, out,
                                                 scratch, a);
  });
}

}  // namespace detail

// One decode step over 4-bit K and V caches (a.bits = 4): out = attention(q,
// K, V) in V's basis, or unrotated with a.unrotate_output. `scratch` holds
// the partials when the plan splits heads (plan_tq_decode(...).scratch_floats
// > 0; it may be larger) and may be null otherwise. Everything is validated
// before anything is recorded.
inline void record_tq_decode(vk::recorder& rec, const vk::buffer<float>& q,
                             const tq_cache_buffers& keys, const tq_cache_buffers& values,
                             const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                             const tq_decode_args& a) {
  detail::record_tq_decode_op<tq_decode_op::nibble>(rec, q, keys, nullptr, values, nullptr, out,
                                                    scratch, a);
}

// The same over 5-, 6- or 8-bit K and V caches (a.bits).
inline void record_tq_hb_decode(vk::recorder& rec, const vk::buffer<float>& q,
                                const tq_cache_buffers& keys, const tq_cache_buffers& values,
                                const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                                const tq_decode_args& a) {
  detail::record_tq_decode_op<tq_decode_op::byte>(rec, q, keys, nullptr, values, nullptr, out,
                                                  scratch, a);
}

// The same over an f16 K cache and a 5/6/8-bit V cache (values_f16 =
// false: `values` holds its codes and norms, `f16_values` is null) or an f16
// V cache (values_f16 = true: the reverse).
inline void record_tq_hybrid_decode(vk::recorder& rec, const vk::buffer<float>& q,
                                    const vk::buffer<f16>& keys, const tq_cache_buffers& values,
                                    const vk::buffer<f16>* f16_values, const vk::buffer<float>& out,
                                    const vk::buffer<float>* scratch, const tq_decode_args& a) {
  detail::record_tq_decode_op<tq_decode_op::hybrid>(rec, q, {}, &keys, values, f16_values, out,
                                                    scratch, a);
}

}  // namespace tessel::kernels
