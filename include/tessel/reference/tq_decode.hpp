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

// What staging decoded rows in f16 (kernels::tq_default_staging) can add to
// each output element of the op, beyond f32 arithmetic, for q and the
// caches `keys` / `values` as tq_decode takes them: every quantized K and V
// value v is staged as v (1 + e) with |e| <= u = 2^-10 (rounding to
// nearest or toward zero). With W_d = sum_j p_j |v_jd| (the attention of
// |V|) and A = scale * |q| * max_j |k_j| >= scale * sum_i |q_i k_ji|
// (Cauchy-Schwarz; rotations keep norms), each score moves by at most
// u_K A (the softcap only shrinks it) and each weight by a factor within
// exp(+-2 u_K A), so
//   |out'_d - out_d| <= W_d (u_V + (exp(2 u_K A) - 1) (1 + u_V)),
// u_K (u_V) being u when K (V) is quantized, else 0. An output returned
// unrotated gets its row's bound as a vector norm: each element is the dot
// product of a unit row of R^T and the rotated output. All zeros when the
// kernels stage f32 rows.
inline std::vector<double> tq_f16_staging_bound(kernels::tq_decode_op which,
                                                std::span<const float> q,
                                                std::span<const double> keys,
                                                std::span<const double> values,
                                                const kernels::tq_decode_args& a) {
  const std::size_t D = a.head_dim, rows = std::size_t{a.batch} * a.num_heads;
  std::vector<double> bound(rows * D, 0.0);
  if (kernels::tq_default_staging != kernels::tq_staging::f16) return bound;
  const double u = 1.0 / 1024;
  const double u_keys = kernels::tq_quantized_keys(which) ? u : 0;
  const double u_values = kernels::tq_quantized_values(which, a) ? u : 0;
  kernels::tq_decode_args rotated = a;
  rotated.unrotate_output = false;
  std::vector<double> magnitudes(values.begin(), values.end());
  for (double& v : magnitudes) v = std::fabs(v);
  const std::vector<double> weights = tq_decode(which, q, keys, magnitudes, rotated);
  const std::uint32_t group = a.num_heads / a.num_kv_heads;
  for (std::size_t row = 0; row < rows; ++row) {
    const std::size_t cache_head = row / group;  // sequence * num_kv_heads + KV head
    double longest = 0, query = 0;
    for (std::size_t slot = 0; slot < a.kv_capacity; ++slot) {
      double norm = 0;
      for (std::size_t d = 0; d < D; ++d) {
        const double k = keys[(cache_head * a.kv_capacity + slot) * D + d];
        norm += k * k;
      }
      longest = std::fmax(longest, std::sqrt(norm));  // NaN (unattended) slots drop out
    }
    for (std::size_t d = 0; d < D; ++d) query += double{q[row * D + d]} * q[row * D + d];
    const double spread = a.resolved_scale() * std::sqrt(query) * longest;
    const double factor = u_values + std::expm1(2 * u_keys * spread) * (1 + u_values);
    double squares = 0;
    for (std::size_t d = 0; d < D; ++d) {
      bound[row * D + d] = factor * weights[row * D + d];
      squares += bound[row * D + d] * bound[row * D + d];
    }
    if (a.unrotate_output)
      for (std::size_t d = 0; d < D; ++d) bound[row * D + d] = std::sqrt(squares);
  }
  return bound;
}

}  // namespace tessel::reference
