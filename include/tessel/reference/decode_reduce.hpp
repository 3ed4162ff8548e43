// Double-precision reference of the decode reduce and of the reduce fused
// with the inverse rotation (kernels/decode_reduce.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/reference/fwht.hpp"

namespace tessel::reference {

inline std::vector<double> decode_reduce(std::span<const float> partials, std::uint32_t nrows,
                                         std::uint32_t head_dim, std::uint32_t nwg) {
  kernels::validate_decode_reduce(nrows, head_dim, nwg, partials.size(),
                                  std::uint64_t{nrows} * head_dim);
  const std::size_t stats = std::size_t{nrows} * head_dim * nwg;
  std::vector<double> out(std::size_t{nrows} * head_dim);
  for (std::size_t r = 0; r < nrows; ++r) {
    double row_max = -1.7014117331926443e38;
    for (std::size_t w = 0; w < nwg; ++w)
      row_max = std::max(row_max, double{partials[stats + 2 * (r * nwg + w) + 1]});
    std::vector<double> weight(nwg);
    double sum = 0;
    for (std::size_t w = 0; w < nwg; ++w) {
      weight[w] = std::exp(double{partials[stats + 2 * (r * nwg + w) + 1]} - row_max);
      sum += weight[w] * partials[stats + 2 * (r * nwg + w)];
    }
    for (std::size_t d = 0; d < head_dim; ++d) {
      double acc = 0;
      for (std::size_t w = 0; w < nwg; ++w)
        acc += weight[w] * partials[4 * (r * (head_dim / 4) * nwg + nwg * (d / 4) + w) + d % 4];
      out[r * head_dim + d] = sum == 0 ? 0.0 : acc / sum;
    }
  }
  return out;
}

// The merged rows, each mapped back by R^-1(y) = s * (H y).
inline std::vector<double> decode_reduce_unrotate(std::span<const float> partials,
                                                  std::uint32_t nrows, std::uint32_t head_dim,
                                                  std::uint32_t nwg) {
  kernels::validate_decode_reduce(nrows, head_dim, nwg, partials.size(),
                                  std::uint64_t{nrows} * head_dim, "decode_reduce_unrotate");
  std::vector<double> out = decode_reduce(partials, nrows, head_dim, nwg);
  for (std::size_t r = 0; r < nrows; ++r)
    unrotate_row(std::span(out).subspan(r * head_dim, head_dim));
  return out;
}

}  // namespace tessel::reference
