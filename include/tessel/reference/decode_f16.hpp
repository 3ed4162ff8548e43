// Double-precision reference of decode attention (kernels/decode_f16.hpp),
// over any cache once widened to double (decode_attention) and over an f16
// one (decode_f16). It works from the definitions: physical slots are
// mapped to logical positions, the mask is applied per position, and the
// softmax is taken over the attended set directly (no online rescaling).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/kernels/decode_f16.hpp"

namespace tessel::reference {

// Whether the key in physical `slot` is attended by the query at logical
// position kv_seq_len - 1.
inline bool decode_attends(const kernels::decode_f16_args& a, std::uint32_t slot) {
  const std::uint32_t logical = (slot + a.kv_capacity - a.ring_start) % a.kv_capacity;
  if (logical >= a.kv_seq_len) return false;
  if (a.mask == kernels::decode_mask::sliding_window && a.kv_seq_len > a.sliding_window)
    return logical >= a.kv_seq_len - a.sliding_window;
  return true;
}

// out [batch, num_heads, head_dim] for q [batch, num_heads, head_dim] and
// keys / values [batch, num_kv_heads, kv_capacity, head_dim], all in double:
// the attention every decode op computes, whatever its cache stores.
inline std::vector<double> decode_attention(std::span<const double> q, std::span<const double> keys,
                                            std::span<const double> values,
                                            const kernels::decode_f16_args& a) {
  // The op's own rules and operand sizes: a call the ops reject throws here
  // too, rather than dividing by num_kv_heads = 0 or reading past a span.
  // (No device: the split the plan picks is not used.)
  constexpr std::string_view op = "decode";
  kernels::plan_decode(op, vk::device_traits{}, a, 0);
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * a.head_dim;
  kernels::require_elements(op, "q", q.size(), std::uint64_t{a.batch} * a.num_heads * a.head_dim);
  kernels::require_elements(op, "keys", keys.size(), cache);
  kernels::require_elements(op, "values", values.size(), cache);
  const std::size_t D = a.head_dim, cap = a.kv_capacity;
  const double scale = a.scale != 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const std::uint32_t group_size = a.num_heads / a.num_kv_heads;
  std::vector<double> out(std::size_t{a.batch} * a.num_heads * D, 0.0);
  std::vector<double> scores(cap);
  for (std::size_t b = 0; b < a.batch; ++b)
    for (std::size_t h = 0; h < a.num_heads; ++h) {
      const std::size_t cache = (b * a.num_kv_heads + h / group_size) * cap;
      const double* query = &q[(b * a.num_heads + h) * D];
      double max_score = -INFINITY;
      for (std::uint32_t slot = 0; slot < cap; ++slot) {
        if (!decode_attends(a, slot)) continue;
        double dot = 0;
        for (std::size_t d = 0; d < D; ++d) dot += query[d] * keys[(cache + slot) * D + d];
        double s = dot * scale;
        if (a.softcap > 0) s = a.softcap * std::tanh(s / a.softcap);
        scores[slot] = s;
        max_score = std::max(max_score, s);
      }
      double sum = 0;
      double* o = &out[(b * a.num_heads + h) * D];
      for (std::uint32_t slot = 0; slot < cap; ++slot) {
        if (!decode_attends(a, slot)) continue;
        const double weight = std::exp(scores[slot] - max_score);
        sum += weight;
        for (std::size_t d = 0; d < D; ++d) o[d] += weight * values[(cache + slot) * D + d];
      }
      for (std::size_t d = 0; d < D; ++d) o[d] /= sum;
    }
  return out;
}

// f32 or f16 elements widened to double (exactly).
template <class T>
std::vector<double> widen_to_double(std::span<const T> x) {
  std::vector<double> out(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    if constexpr (std::is_same_v<T, float>)
      out[i] = x[i];
    else
      out[i] = to_float(x[i]);
  }
  return out;
}

// decode_f16 for q f32 and keys / values f16.
inline std::vector<double> decode_f16(std::span<const float> q, std::span<const f16> keys,
                                      std::span<const f16> values,
                                      const kernels::decode_f16_args& a) {
  return decode_attention(widen_to_double(q), widen_to_double(keys), widen_to_double(values), a);
}

}  // namespace tessel::reference
