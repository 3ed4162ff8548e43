// Validation rules shared by every host op, so the same rule reads the same
// way everywhere: "<op>: <argument> = <value> <rule>".
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "tessel/error.hpp"

namespace tessel::kernels {

inline void require_positive(std::string_view op, std::string_view argument, std::uint64_t value) {
  require(value > 0, op, argument, value, "must be > 0");
}

inline void require_in_range(std::string_view op, std::string_view argument, std::uint64_t value,
                             std::uint64_t low, std::uint64_t high) {
  require(value >= low && value <= high, op, argument, value,
          "must be in [" + std::to_string(low) + ", " + std::to_string(high) + "]");
}

// a * b * ... without silent wrap-around: sizes are computed in 64 bits and
// an overflow is an error naming the quantity.
inline std::uint64_t checked_product(std::string_view op, std::string_view what,
                                     std::initializer_list<std::uint64_t> factors) {
  std::uint64_t product = 1;
  for (std::uint64_t f : factors) {
    if (f != 0 && product > std::numeric_limits<std::uint64_t>::max() / f)
      throw error(op, std::string(what) + " overflows 64 bits");
    product *= f;
  }
  return product;
}

// ceil(a / b) for b > 0: tile and workgroup counts.
constexpr std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return (a + b - 1) / b;
}

// Element count of a buffer argument must be exactly what the shape needs.
inline void require_elements(std::string_view op, std::string_view buffer, std::uint64_t actual,
                             std::uint64_t expected) {
  require(actual == expected, op, std::string(buffer) + " element count", actual,
          "must equal " + std::to_string(expected) + " for the given shape");
}

// Indices inside kernels are 32-bit: a buffer of more elements is rejected.
inline void require_32bit_indexable(std::string_view op, std::string_view buffer,
                                    std::uint64_t elements) {
  require(elements <= std::numeric_limits<std::uint32_t>::max(), op,
          std::string(buffer) + " element count", elements,
          "must fit 32-bit indexing (<= 4294967295)");
}

// One of a short list of allowed values; the rule lists them
// ("must be 64, 128, 256 or 512").
inline void require_one_of(std::string_view op, std::string_view argument, std::uint64_t value,
                           std::initializer_list<std::uint64_t> allowed) {
  std::string rule = "must be ";
  std::size_t i = 0;
  for (std::uint64_t a : allowed) {
    rule += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + std::to_string(a);
    ++i;
  }
  require(std::find(allowed.begin(), allowed.end(), value) != allowed.end(), op, argument, value,
          rule);
}

// Calls f(std::integral_constant<int, D>{}) for the D in Ds equal to
// head_dim: the bridge from a run-time head dim to a compile-time variant.
template <int... Ds, class F>
void with_head_dim(std::string_view op, std::uint32_t head_dim, F&& f) {
  bool found = false;
  ((head_dim == static_cast<std::uint32_t>(Ds)
        ? (f(std::integral_constant<int, Ds>{}), found = true)
        : false),
   ...);
  if (!found) {
    std::string supported;
    ((supported += (supported.empty() ? "" : ", ") + std::to_string(Ds)), ...);
    throw error(
        op, "head_dim = " + std::to_string(head_dim) + " has no variant; supported: " + supported);
  }
}

}  // namespace tessel::kernels
