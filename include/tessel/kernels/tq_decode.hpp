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
//     inverse rotation when NWG > 1), else the caller applies fwht unrotate.
// The seed's hybrid path writes K raw (f16) and V without rotation: raw q,
// raw output, both flags false.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/dsl/tq_codebooks.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/turboquant.hpp"
#include "tessel/kernels/validate.hpp"

namespace tessel::kernels {

enum class tq_decode_op : std::uint32_t { nibble = 0, byte = 1, hybrid = 2 };

constexpr std::string_view op_name(tq_decode_op op) {
  return op == tq_decode_op::nibble ? "tq_decode"
         : op == tq_decode_op::byte ? "tq_hb_decode"
                                    : "tq_hybrid_decode";
}

// One decode step over TurboQuant caches: the attention shape of
// decode_f16_args (batch, heads, kv_seq_len, kv_capacity, mask, window,
// ring_start, scale, softcap, nwg, heads_per_group) and the cache's rules.
// Buffers: q and out f32 [batch, num_heads, head_dim]; a quantized cache is
// codes + norms in the format tq_cache_format{batch * num_kv_heads,
// kv_capacity, head_dim, bits} (sequence b's KV head h is cache head
// b * num_kv_heads + h); an f16 cache is [batch, num_kv_heads, kv_capacity,
// head_dim] as for decode_f16.
struct tq_decode_args : decode_f16_args {
  // Code width of the quantized caches: 4 for tq_decode; 5, 6 or 8 for
  // tq_hb_decode and for the hybrid's quantized V.
  std::uint32_t bits = 4;
  bool values_f16 = false;       // tq_hybrid_decode only: V is an f16 cache
  float scale_factor_d512 = 0;   // the encoder's; D = 512 only; 0 means 1.0
  bool fuse_fwht_pre = false;    // q is raw and the kernel rotates it (K was rotated)
  bool unrotate_output = false;  // return the output unrotated (V was rotated)
  std::uint32_t nsg = 0;         // subgroups per workgroup: 1, 2 or 4; 0 chooses
};

// Subgroups per workgroup a call uses.
constexpr std::uint32_t tq_decode_subgroups(const tq_decode_args& a) {
  return a.nsg != 0 ? a.nsg : static_cast<std::uint32_t>(decode_subgroups);
}

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

// The rules of a call, buffers and split aside.
inline void validate_tq_decode(tq_decode_op which, const tq_decode_args& a) {
  const std::string_view op = op_name(which);
  require_one_of(op, "head_dim", a.head_dim, {64, 128, 256, 512});
  if (which == tq_decode_op::nibble) {
    require(a.bits == 4, op, "bits", a.bits, "must be 4 (5, 6 and 8 are tq_hb_decode's)");
  } else if (tq_quantized_values(which, a)) {
    require_one_of(op, "bits", a.bits, {5, 6, 8});
  }
  require(which == tq_decode_op::hybrid || !a.values_f16, op, "values_f16", 1,
          "is for tq_hybrid_decode only");
  validate_decode_shape(op, a);
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
  validate_tq_decode(which, a);
  return plan_decode_split(op_name(which), device, a, tq_decode_subgroups(a));
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

// The softmax scale a call uses: 0 selects 1 / sqrt(head_dim).
inline float tq_decode_scale(const tq_decode_args& a) {
  return a.scale != 0 ? a.scale : 1.0f / std::sqrt(static_cast<float>(a.head_dim));
}

// The parameter blocks, filled from validated arguments. The kernels see
// the resolved scale and scale_factor_d512 (never 0: question Q10) and the
// softcap they apply (the seed declared it and never applied it, Q7).
inline TqParams tq_params(const tq_decode_args& a, std::uint32_t nwg) {
  return {a.num_heads,
          a.num_kv_heads,
          a.head_dim,
          a.kv_seq_len,
          a.kv_capacity,
          tq_decode_scale(a),
          static_cast<std::uint32_t>(a.mask),
          a.sliding_window,
          a.softcap,
          nwg,
          a.ring_start,
          tq_resolve_scale_factor(a.scale_factor_d512)};
}

// codebook_bits is 0 for the hybrid's f16 V (no codebook).
inline TqHbParams tq_hb_params(const tq_decode_args& a, std::uint32_t nwg) {
  return {a.num_heads,
          a.num_kv_heads,
          a.head_dim,
          a.kv_seq_len,
          a.kv_capacity,
          tq_decode_scale(a),
          static_cast<std::uint32_t>(a.mask),
          a.sliding_window,
          a.softcap,
          nwg,
          a.ring_start,
          tq_resolve_scale_factor(a.scale_factor_d512),
          a.values_f16 ? 0u : a.bits,
          a.fuse_fwht_pre ? 1u : 0u,
          tq_decode_subgroups(a)};
}

// --- tile loaders -------------------------------------------------------------
//
// A decode kernel walks its positions in tiles of up to TILE consecutive
// logical positions of one KV head: every invocation loads its share of the
// next tile into registers (load_*), writes it to shared memory between
// barriers (store_*), and the kernel reads each staged row in chunks of 8
// floats (*_chunk). For a quantized cache the tile holds the packed code
// words (16-byte loads, a quarter of f16's bytes at 4 bits) and, per row and
// norm block, the value scale N / sqrt(D) or n_b / scale_factor_d512; a
// chunk is dequantized on read through the codebook, which the first store
// copies to shared memory (dynamically indexed private arrays are slow on
// GPUs). Rows of a tile past `count` repeat its last row: finite, and no
// load is conditional.
//
// The text goes after the definitions of D, TILE and THREADS (invocations
// per workgroup), the parameter block (kv_capacity, scale_factor_d512), the
// buffers <cache>_codes (uint, with a uvec4 wide view) and <cache>_norms,
// `uint cache_slot(uint position)` (the ring mapping) and the tq_unpack
// snippet. For cache "key" (and likewise "value"):
//   void load_key_tile(uint cache_head, uint first, uint count)   count in 1..TILE
//   void store_key_tile()                 between barriers, after load_key_tile
//   void key_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
//        floats 8 chunk .. 8 chunk + 7 of staged row `row`

// The shared codebook: stage_tq_levels(bits) (every invocation, uniform
// control flow, between barriers; only the first call copies) and
// tq_tile_levels(bits, packed), the levels of the four codes in the low
// 4 * storage bits of `packed`.
inline std::string tq_tile_levels_glsl() {
  return "const uint TQ_NORM_BLOCK = " + std::to_string(tq_norm_block) + "u;\n" +
         "const uint TQ_NORMS_PER_ROW = D > TQ_NORM_BLOCK ? D / TQ_NORM_BLOCK : 1u;\n" +
         "shared float tq_levels[" + std::to_string(tq::codebook_for(8).levels()) + "];\n" +
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
// constant) whose codes take `storage_bits` (4 or 8) each.
inline std::string tq_tile_glsl(std::string_view cache_name, std::string_view bits_expr,
                                std::uint32_t storage_bits) {
  std::string text = R"glsl(
const uint CACHE_tile_VECS = D * STORAGEu / 128u;
const uint CACHE_tile_LOADS = (TILE * CACHE_tile_VECS + THREADS - 1u) / THREADS;
const uint CACHE_tile_SCALE_LOADS = (TILE * TQ_NORMS_PER_ROW + THREADS - 1u) / THREADS;
shared uvec4 CACHE_tile[TILE * CACHE_tile_VECS];
shared float CACHE_tile_scale[TILE * TQ_NORMS_PER_ROW];
uvec4 CACHE_tile_in[CACHE_tile_LOADS];
float CACHE_tile_scale_in[CACHE_tile_SCALE_LOADS];

void load_CACHE_tile(uint cache_head, uint first, uint count) {
  const uint head_base = cache_head * params.kv_capacity;
  for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = min(gl_LocalInvocationIndex + i * THREADS, TILE * CACHE_tile_VECS - 1u);
    const uint row = min(at / CACHE_tile_VECS, count - 1u);
    CACHE_tile_in[i] =
        CACHE_codes_wide[(head_base + cache_slot(first + row)) * CACHE_tile_VECS + at % CACHE_tile_VECS];
  }
  for (uint i = 0u; i < CACHE_tile_SCALE_LOADS; ++i) {
    const uint at = min(gl_LocalInvocationIndex + i * THREADS, TILE * TQ_NORMS_PER_ROW - 1u);
    const uint row = min(at / TQ_NORMS_PER_ROW, count - 1u);
    const float norm =
        CACHE_norms[(head_base + cache_slot(first + row)) * TQ_NORMS_PER_ROW + at % TQ_NORMS_PER_ROW];
    CACHE_tile_scale_in[i] = tq_value_scale(norm, D, params.scale_factor_d512);
  }
}

void store_CACHE_tile() {
  stage_tq_levels(BITS);
  for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = gl_LocalInvocationIndex + i * THREADS;
    if (at < TILE * CACHE_tile_VECS) CACHE_tile[at] = CACHE_tile_in[i];
  }
  for (uint i = 0u; i < CACHE_tile_SCALE_LOADS; ++i) {
    const uint at = gl_LocalInvocationIndex + i * THREADS;
    if (at < TILE * TQ_NORMS_PER_ROW) CACHE_tile_scale[at] = CACHE_tile_scale_in[i];
  }
}

void CACHE_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high) {
  // Chunks of a norm block share its scale (one block below D = 512).
  const float scale = CACHE_tile_scale[row * TQ_NORMS_PER_ROW + chunk / (TQ_NORM_BLOCK / 8u)];
  if (STORAGEu == 4u) {
    // One word holds the chunk's 8 nibbles.
    const uint word = CACHE_tile[row * CACHE_tile_VECS + (chunk >> 2)][chunk & 3u];
    low = tq_tile_levels(4u, word) * scale;
    high = tq_tile_levels(4u, word >> 16) * scale;
  } else {
    // Two words hold the chunk's 8 bytes.
    const uvec4 words = CACHE_tile[row * CACHE_tile_VECS + (chunk >> 1)];
    const bool upper = (chunk & 1u) != 0u;
    low = tq_tile_levels(BITS, upper ? words.z : words.x) * scale;
    high = tq_tile_levels(BITS, upper ? words.w : words.y) * scale;
  }
}
)glsl";
  const auto replace_all = [&](std::string_view from, const std::string& to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at))
      text.replace(at, from.size(), to), at += to.size();
  };
  replace_all("CACHE", std::string(cache_name));
  replace_all("STORAGE", std::to_string(storage_bits));
  replace_all("BITS", std::string(bits_expr));
  return text;
}

}  // namespace tessel::kernels
