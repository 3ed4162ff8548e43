// A device result against its double-precision reference, with the rule
// op_entry documents: an element passes when |got - ref| <= abs_tol +
// rel_tol * |ref|. NaN or infinity where the reference is finite fails.
// Shared by `tessel run --check`, `tessel demo` and the tests, so all three
// judge a result the same way.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/error.hpp"
#include "tessel/op.hpp"
#include "tessel/tensor.hpp"

namespace tessel {

namespace detail {

inline double widen(float v) {
  return v;
}
inline double widen(f16 v) {
  return to_float(v);
}
inline double widen(bf16 v) {
  return to_float(v);
}
// Integer results (codes, indices) are exact in double.
template <std::integral T>
double widen(T v) {
  return static_cast<double>(v);
}

template <class T>
op_error compare_values(std::span<const T> got, const std::vector<double>& want, double abs_tol,
                        double rel_tol) {
  op_error e;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = widen(got[i]);
    const double r = want[i];
    if (!std::isfinite(r)) {
      // A non-finite reference (an intended inf, say) must be matched exactly.
      if (!((std::isnan(r) && std::isnan(g)) || g == r)) ++e.out_of_bound;
      continue;
    }
    if (!std::isfinite(g)) {
      ++e.non_finite;
      ++e.out_of_bound;
      continue;
    }
    const double diff = std::abs(g - r);
    e.max_abs = std::max(e.max_abs, diff);
    if (r != 0) e.max_rel = std::max(e.max_rel, diff / std::abs(r));
    if (!(diff <= abs_tol + rel_tol * std::abs(r))) ++e.out_of_bound;
  }
  return e;
}

}  // namespace detail

// max_abs and max_rel cover the elements where both values are finite;
// max_rel skips elements whose reference is exactly zero (abs_tol covers them).
inline op_error compare(const tensor& got, const std::vector<double>& want, double abs_tol,
                        double rel_tol) {
  if (got.elements() != want.size())
    throw error("compare", "result has " + std::to_string(got.elements()) +
                               " elements, the reference " + std::to_string(want.size()));
  switch (got.kind) {
    case scalar_kind::f32:
      return detail::compare_values(got.as<float>(), want, abs_tol, rel_tol);
    case scalar_kind::f16:
      return detail::compare_values(got.as<f16>(), want, abs_tol, rel_tol);
    case scalar_kind::bf16:
      return detail::compare_values(got.as<bf16>(), want, abs_tol, rel_tol);
    case scalar_kind::u8:
      return detail::compare_values(got.as<std::uint8_t>(), want, abs_tol, rel_tol);
    case scalar_kind::u32:
      return detail::compare_values(got.as<std::uint32_t>(), want, abs_tol, rel_tol);
    default:
      throw error("compare", "result element type " + std::string(kind_name(got.kind)) +
                                 " is not f32, f16, bf16, u8 or u32");
  }
}

// True when every element passed.
inline bool within_tolerance(const op_error& e) {
  return e.out_of_bound == 0 && e.non_finite == 0;
}

}  // namespace tessel
