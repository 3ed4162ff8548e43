// Double-precision reference of the prefill (kernels/prefill.hpp) and of its
// tile classifier (kernels/prefill_blk.hpp). Inputs are the f16/bf16 values
// widened to float, which is exact, so the reference sees exactly what the
// kernel reads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"

namespace tessel::reference {

// f16 or bf16 values as floats (exact).
template <class E>
std::vector<float> widen(std::span<const E> values) {
  std::vector<float> out(values.size());
  std::transform(values.begin(), values.end(), out.begin(), [](E x) { return to_float(x); });
  return out;
}

// A boolean mask as the additive biases it stands for: 0 attends, -inf blocks.
inline std::vector<float> boolean_biases(std::span<const std::uint8_t> mask) {
  std::vector<float> out(mask.size());
  std::transform(mask.begin(), mask.end(), out.begin(), [](std::uint8_t x) {
    return x != 0 ? 0.0f : -std::numeric_limits<float>::infinity();
  });
  return out;
}

// Attention of problem p in double, laid out like Q. `mask` holds additive
// biases shaped as p.mask_rank says (a boolean mask through boolean_biases),
// empty for none. Key j is attended by row i unless causal and
// j > query_offset + i, or its bias is -inf; a row attending no key is 0.
inline std::vector<double> prefill(const kernels::prefill_problem& p, std::span<const float> q,
                                   std::span<const float> k, std::span<const float> v,
                                   std::span<const float> mask = {}) {
  kernels::validate_prefill(
      p, {q.size(), k.size(), v.size(), q.size(),
          mask.empty() ? std::nullopt : std::optional<std::uint64_t>(mask.size()), std::nullopt});
  const kernels::PrefillParams s = kernels::prefill_params(p);
  const double scale = p.softmax_scale();
  const std::size_t d_count = p.head_dim;
  const std::uint32_t group = p.num_heads / p.num_kv_heads;
  std::vector<double> out(q.size(), 0.0);
  std::vector<double> scores(p.key_len);
  std::vector<bool> attended(p.key_len);
  for (std::uint32_t b = 0; b < p.batch; ++b)
    for (std::uint32_t h = 0; h < p.num_heads; ++h) {
      const std::uint32_t kv_head = h / group;
      for (std::uint32_t i = 0; i < p.query_len; ++i) {
        const std::size_t q_at = b * s.q_strides[0] + h * s.q_strides[1] + i * s.q_strides[2];
        double best = -std::numeric_limits<double>::infinity();
        bool any = false;
        for (std::uint32_t j = 0; j < p.key_len; ++j) {
          const double bias =
              mask.empty()
                  ? 0.0
                  : mask[b * s.mask_strides[0] + h * s.mask_strides[1] + i * s.mask_strides[2] + j];
          attended[j] = !(p.causal && j > std::uint64_t{p.query_offset} + i) &&
                        bias != -std::numeric_limits<double>::infinity();
          if (!attended[j]) continue;
          const std::size_t k_at =
              b * s.k_strides[0] + kv_head * s.k_strides[1] + j * s.k_strides[2];
          double dot = 0;
          for (std::size_t d = 0; d < d_count; ++d) dot += double{q[q_at + d]} * k[k_at + d];
          scores[j] = scale * dot + bias;
          best = std::max(best, scores[j]);
          any = true;
        }
        if (!any) continue;
        const std::size_t o_at = b * s.o_strides[0] + h * s.o_strides[1] + i * s.o_strides[2];
        double sum = 0;
        for (std::uint32_t j = 0; j < p.key_len; ++j) {
          if (!attended[j]) continue;
          const double weight = std::exp(scores[j] - best);
          sum += weight;
          const std::size_t v_at =
              b * s.v_strides[0] + kv_head * s.v_strides[1] + j * s.v_strides[2];
          for (std::size_t d = 0; d < d_count; ++d) out[o_at + d] += weight * v[v_at + d];
        }
        for (std::size_t d = 0; d < d_count; ++d) out[o_at + d] /= sum;
      }
    }
  return out;
}

// The tile classes of `mask` (additive biases, see prefill) for the prefill
// of p, laid out as kernels/prefill_blk.hpp describes.
inline std::vector<std::uint8_t> prefill_blk(const kernels::prefill_problem& p,
                                             std::span<const float> mask) {
  kernels::validate_prefill_blk(p, mask.size(), std::nullopt);
  const kernels::prefill_geometry g = kernels::prefill_geometry_for(p.head_dim);
  const kernels::PrefillParams s = kernels::prefill_params(p);
  const std::uint64_t query_tiles = kernels::ceil_div(p.query_len, g.query_rows);
  const std::uint64_t key_tiles = kernels::ceil_div(p.key_len, g.keys);
  const std::uint64_t planes = kernels::prefill_blk_planes(p);
  std::vector<std::uint8_t> out(planes * query_tiles * key_tiles);
  for (std::uint64_t plane = 0; plane < planes; ++plane)
    for (std::uint64_t qt = 0; qt < query_tiles; ++qt)
      for (std::uint64_t kt = 0; kt < key_tiles; ++kt) {
        bool any_attended = false, all_plain = true;
        const std::uint64_t base =
            plane / p.num_heads * s.mask_strides[0] + plane % p.num_heads * s.mask_strides[1];
        for (std::uint64_t i = qt * g.query_rows;
             i < std::min<std::uint64_t>(p.query_len, (qt + 1) * g.query_rows); ++i)
          for (std::uint64_t j = kt * g.keys;
               j < std::min<std::uint64_t>(p.key_len, (kt + 1) * g.keys); ++j) {
            const float bias = mask[base + i * s.mask_strides[2] + j];
            any_attended = any_attended || bias != -std::numeric_limits<float>::infinity();
            all_plain = all_plain && bias == 0.0f;
          }
        const kernels::tile_class c = !any_attended ? kernels::tile_class::skip
                                      : all_plain   ? kernels::tile_class::full
                                                    : kernels::tile_class::mixed;
        out[(plane * query_tiles + qt) * key_tiles + kt] = static_cast<std::uint8_t>(c);
      }
  return out;
}

}  // namespace tessel::reference
