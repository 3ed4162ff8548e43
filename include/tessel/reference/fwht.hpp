// Double-precision reference of the Hadamard rotations (kernels/fwht.hpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/fwht.hpp"

namespace tessel::reference {

// The normalized Walsh-Hadamard transform of one row, in natural order.
inline void hadamard(std::span<double> row) {
  for (std::size_t h = 1; h < row.size(); h <<= 1)
    for (std::size_t j = 0; j < row.size(); ++j)
      if ((j & h) == 0) {
        const double a = row[j], b = row[j + h];
        row[j] = a + b;
        row[j + h] = a - b;
      }
  const double norm = 1.0 / std::sqrt(static_cast<double>(row.size()));
  for (double& x : row) x *= norm;
}

inline double hadamard_sign(std::uint32_t j) {
  return snippets::hadamard_sign_negative(j) ? -1.0 : 1.0;
}

// The rotation R(x) = H(s * x) of TurboQuant and its inverse s * (H y), in
// place on one row.
inline void rotate_row(std::span<double> row) {
  for (std::uint32_t j = 0; j < row.size(); ++j) row[j] *= hadamard_sign(j);
  hadamard(row);
}
inline void unrotate_row(std::span<double> row) {
  hadamard(row);
  for (std::uint32_t j = 0; j < row.size(); ++j) row[j] *= hadamard_sign(j);
}

inline std::vector<double> fwht(std::span<const float> data, std::uint32_t num_heads,
                                std::uint32_t head_dim, kernels::hadamard_mode mode) {
  kernels::validate_fwht(num_heads, head_dim, mode, data.size());
  std::vector<double> out(data.begin(), data.end());
  for (std::uint32_t h = 0; h < num_heads; ++h) {
    std::span<double> row(out.data() + std::size_t{h} * head_dim, head_dim);
    if (mode == kernels::hadamard_mode::rotate)
      rotate_row(row);
    else if (mode == kernels::hadamard_mode::unrotate)
      unrotate_row(row);
    else
      hadamard(row);
  }
  return out;
}

}  // namespace tessel::reference
