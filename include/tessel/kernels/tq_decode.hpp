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

}  // namespace tessel::kernels
