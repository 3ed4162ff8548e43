// Double-precision reference of decode attention over TurboQuant caches
// (kernels/tq_decode.hpp): the caches are dequantized (or widened from f16)
// to double and attended by the decode_f16 reference, with the rotation
// contract applied around it: q rotated first when fuse_fwht_pre, the
// output unrotated last when unrotate_output.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "tessel/kernels/tq_decode.hpp"
#include "tessel/reference/decode_f16.hpp"
#include "tessel/reference/fwht.hpp"
#include "tessel/reference/turboquant.hpp"

namespace tessel::reference {

// The values a cache stands for, [num_kv_heads, kv_capacity, head_dim] in
// the basis its rows were encoded in (tq_dequantize_position of every slot).
inline std::vector<double> tq_dequantize_cache(const tq_cache& cache, float scale_factor_d512) {
  const kernels::tq_cache_format& f = cache.format;
  std::vector<double> out;
  out.reserve(std::size_t{f.num_kv_heads} * f.kv_capacity * f.head_dim);
  for (std::uint32_t head = 0; head < f.num_kv_heads; ++head)
    for (std::uint32_t slot = 0; slot < f.kv_capacity; ++slot) {
      const std::vector<double> row = tq_dequantize_position(cache, head, slot, scale_factor_d512);
      out.insert(out.end(), row.begin(), row.end());
    }
  return out;
}

// out [batch, num_heads, head_dim] for q f32 [batch, num_heads, head_dim]
// and keys / values [batch * num_kv_heads, kv_capacity, head_dim] holding
// what the op's caches stand for (tq_dequantize_cache, or widen_to_double
// of an f16 cache).
inline std::vector<double> tq_decode(kernels::tq_decode_op which, std::span<const float> q,
                                     std::span<const double> keys, std::span<const double> values,
                                     const kernels::tq_decode_args& a) {
  kernels::validate_tq_decode(which, a);
  const std::string_view op = kernels::op_name(which);
  const std::size_t D = a.head_dim;
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * D;
  kernels::require_elements(op, "q", q.size(), std::uint64_t{a.batch} * a.num_heads * D);
  kernels::require_elements(op, "keys", keys.size(), cache);
  kernels::require_elements(op, "values", values.size(), cache);
  std::vector<double> query = widen_to_double(q);
  if (a.fuse_fwht_pre)
    for (std::size_t row = 0; row < query.size() / D; ++row)
      rotate_row(std::span(query).subspan(row * D, D));
  std::vector<double> out = decode_attention(query, keys, values, a);
  if (a.unrotate_output)
    for (std::size_t row = 0; row < out.size() / D; ++row)
      unrotate_row(std::span(out).subspan(row * D, D));
  return out;
}

}  // namespace tessel::reference
