// A host tensor: element kind, shape and little-endian bytes. The currency of
// `tessel run`, the demo and the op catalog, where types are known only at
// run time (.npy files).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/error.hpp"

namespace tessel {

struct tensor {
  scalar_kind kind = scalar_kind::f32;
  std::vector<std::uint64_t> shape;
  std::vector<std::byte> data;

  static tensor zeros(scalar_kind kind, std::vector<std::uint64_t> shape) {
    tensor t{kind, std::move(shape), {}};
    t.data.resize(t.elements() * kind_size(kind));
    return t;
  }
  template <scalar T>
  static tensor from(std::vector<std::uint64_t> shape, std::span<const T> values) {
    tensor t = zeros(scalar_traits<T>::kind, std::move(shape));
    if (values.size() != t.elements())
      throw error("tensor", "value count " + std::to_string(values.size()) +
                                " does not match the shape's " + std::to_string(t.elements()));
    std::memcpy(t.data.data(), values.data(), t.data.size());
    return t;
  }

  // Throws tessel::error when the count does not fit 64 bits.
  std::uint64_t elements() const {
    std::uint64_t n = 1;
    for (auto d : shape) {
      if (d != 0 && n > std::numeric_limits<std::uint64_t>::max() / d)
        throw error("tensor", "shape " + shape_text() + " has more elements than fit 64 bits");
      n *= d;
    }
    return n;
  }
  std::string shape_text() const {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
  template <scalar T>
  std::span<T> as() {
    check<T>();
    return {reinterpret_cast<T*>(data.data()), static_cast<std::size_t>(elements())};
  }
  template <scalar T>
  std::span<const T> as() const {
    check<T>();
    return {reinterpret_cast<const T*>(data.data()), static_cast<std::size_t>(elements())};
  }

 private:
  // A view is only taken of data that hold exactly the shape's elements, so
  // a tensor assembled by hand with too few bytes is an error, not a read
  // past its end.
  template <scalar T>
  void check() const {
    if (scalar_traits<T>::kind != kind)
      throw error("tensor", "holds " + std::string(kind_name(kind)) + ", not " +
                                std::string(kind_name(scalar_traits<T>::kind)));
    const std::uint64_t count = elements();
    if (count > data.size() / sizeof(T) || data.size() != count * sizeof(T))
      throw error("tensor", "shape " + shape_text() + " of " + std::string(kind_name(kind)) +
                                " needs " + std::to_string(count) + " elements, the data hold " +
                                std::to_string(data.size()) + " bytes");
  }
};

// The largest |x| of an f32, f16 or bf16 tensor, NaNs ignored (0 when empty).
inline double max_magnitude(const tensor& t) {
  double out = 0;
  const auto scan = [&](auto values) {
    for (const auto x : values) {
      double magnitude;
      if constexpr (std::is_same_v<decltype(x), const float>)
        magnitude = std::fabs(double(x));
      else
        magnitude = std::fabs(double(to_float(x)));
      if (magnitude > out) out = magnitude;
    }
  };
  switch (t.kind) {
    case scalar_kind::f32:
      scan(t.as<float>());
      break;
    case scalar_kind::f16:
      scan(t.as<f16>());
      break;
    case scalar_kind::bf16:
      scan(t.as<bf16>());
      break;
    default:
      throw error("max_magnitude",
                  "holds " + std::string(kind_name(t.kind)) + ", not a floating-point type");
  }
  return out;
}

}  // namespace tessel
