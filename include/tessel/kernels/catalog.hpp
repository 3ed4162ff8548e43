// The run-time catalog of host ops: how `tessel run`, `tessel run --list`,
// `tessel demo` and the tests reach every op by name with tensors. Each entry
// binds an op's typed host function and its double-precision reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/op.hpp"
#include "tessel/reference/decode_reduce.hpp"
#include "tessel/reference/fwht.hpp"
#include "tessel/tensor.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

namespace detail {

// The named input, which must exist, hold `kind` and have `rank` dimensions.
inline const tensor& input(const tensor_map& inputs, std::string_view op, const std::string& name,
                           scalar_kind kind, std::size_t rank) {
  const auto it = inputs.find(name);
  if (it == inputs.end()) throw error(op, "input " + name + " is missing");
  require(it->second.kind == kind, op, name + " dtype", kind_name(it->second.kind),
          "must be " + std::string(kind_name(kind)));
  require(it->second.shape.size() == rank, op, name + " rank", it->second.shape.size(),
          "must be " + std::to_string(rank));
  return it->second;
}

// A shape parameter: the value the input's shape gives, which an explicit
// parameter must agree with.
inline std::uint32_t shape_parameter(const parameter_map& params, std::string_view op,
                                     const std::string& name, std::uint64_t from_shape) {
  require(from_shape <= UINT32_MAX, op, name, from_shape, "must fit 32 bits");
  const auto it = params.find(name);
  if (it != params.end())
    require(it->second == static_cast<double>(from_shape), op, name, it->second,
            "must equal the input shape's " + std::to_string(from_shape));
  return static_cast<std::uint32_t>(from_shape);
}

// A non-negative integer parameter; required when there is no fallback.
inline std::uint32_t integer_parameter(const parameter_map& params, std::string_view op,
                                       const std::string& name,
                                       std::optional<std::uint32_t> fallback = std::nullopt) {
  const auto it = params.find(name);
  if (it == params.end()) {
    if (!fallback) throw error(op, "parameter " + name + " is missing");
    return *fallback;
  }
  require(it->second >= 0 && it->second <= UINT32_MAX && std::floor(it->second) == it->second, op,
          name, it->second, "must be a non-negative integer");
  return static_cast<std::uint32_t>(it->second);
}

// A device copy of an f32 tensor, and a tensor of a device buffer's contents.
inline vk::buffer<float> upload_f32(vk::context& ctx, const tensor& t) {
  vk::buffer<float> buffer(ctx, t.elements());
  buffer.upload(t.as<float>());
  return buffer;
}

inline tensor download_f32(const vk::buffer<float>& buffer, std::vector<std::uint64_t> shape) {
  const std::vector<float> values = buffer.download();
  return tensor::from<float>(std::move(shape), std::span<const float>(values));
}

inline tensor random_f32(std::vector<std::uint64_t> shape, std::mt19937_64& rng, float low,
                         float high) {
  tensor t = tensor::zeros(scalar_kind::f32, std::move(shape));
  std::uniform_real_distribution<float> dist(low, high);
  for (float& x : t.as<float>()) x = dist(rng);
  return t;
}

inline op_entry fwht_entry() {
  op_entry e;
  e.name = "fwht";
  e.description =
      "In-place randomized Walsh-Hadamard rotation of f32 rows (TurboQuant): mode 0 plain H, "
      "1 rotate H(s*x), 2 unrotate s*(H y); normalized by 1/sqrt(head_dim).";
  e.inputs = {{"data", scalar_kind::f32, "[num_heads, head_dim]", "rows to transform"}};
  e.outputs = {{"data", scalar_kind::f32, "[num_heads, head_dim]", "transformed rows"}};
  e.params = {{"num_heads", "rows", std::nullopt, "data.shape[0]"},
              {"head_dim", "row length: 64, 128, 256 or 512", std::nullopt, "data.shape[1]"},
              {"mode", "0 plain, 1 rotate, 2 unrotate", 1.0, ""}};
  auto shape = [](const tensor_map& in, const parameter_map& p) {
    const tensor& data = input(in, "fwht", "data", scalar_kind::f32, 2);
    return std::tuple{shape_parameter(p, "fwht", "num_heads", data.shape[0]),
                      shape_parameter(p, "fwht", "head_dim", data.shape[1]),
                      static_cast<hadamard_mode>(integer_parameter(p, "fwht", "mode", 1))};
  };
  e.run = [shape](vk::context& ctx, const tensor_map& in, const parameter_map& p) {
    const auto [num_heads, head_dim, mode] = shape(in, p);
    const tensor& data = in.at("data");
    validate_fwht(num_heads, head_dim, mode, data.elements());
    const vk::buffer<float> buffer = upload_f32(ctx, data);
    vk::recorder rec(ctx);
    record_fwht(rec, buffer, num_heads, head_dim, mode);
    rec.submit_and_wait();
    return tensor_map{{"data", download_f32(buffer, data.shape)}};
  };
  e.reference = [shape](const tensor_map& in, const parameter_map& p) {
    const auto [num_heads, head_dim, mode] = shape(in, p);
    return reference_map{
        {"data", reference::fwht(in.at("data").as<float>(), num_heads, head_dim, mode)}};
  };
  e.demo_cases = [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<op_case> cases;
    const std::uint32_t dims[] = {128, 256, 512};
    const std::uint32_t heads[] = {7, 16, 3};
    for (int i = 0; i < 3; ++i)
      for (std::uint32_t mode = 0; mode < 3; ++mode)
        cases.push_back({"H=" + std::to_string(heads[i]) + " D=" + std::to_string(dims[i]) + " " +
                             std::string(mode_name(static_cast<hadamard_mode>(mode))),
                         {{"data", random_f32({heads[i], dims[i]}, rng, -2.0f, 2.0f)}},
                         {{"mode", double(mode)}}});
    return cases;
  };
  // f32 butterflies over log2(D) <= 9 stages: error grows like sqrt(D) ulps.
  e.abs_tolerance = 1e-5;
  e.rel_tolerance = 1e-5;
  return e;
}

inline op_entry decode_reduce_entry() {
  op_entry e;
  e.name = "decode_reduce";
  e.description =
      "Merges NWG partial decode results (unnormalized O, sum S, max M per workgroup) into "
      "normalized output rows; rows whose slices are all empty give exact zeros.";
  e.inputs = {{"partials", scalar_kind::f32, "[nrows * nwg * (head_dim + 2)]",
               "O chunks interleaved by workgroup, then (S, M) pairs"}};
  e.outputs = {{"dst", scalar_kind::f32, "[nrows, head_dim]", "merged rows"}};
  e.params = {{"nrows", "query rows (heads x sequences)", std::nullopt, ""},
              {"head_dim", "64, 128, 256 or 512", std::nullopt, ""},
              {"nwg", "partials per row, 1..64", std::nullopt, ""}};
  auto shape = [](const tensor_map& in, const parameter_map& p) {
    input(in, "decode_reduce", "partials", scalar_kind::f32, 1);
    return std::tuple{integer_parameter(p, "decode_reduce", "nrows"),
                      integer_parameter(p, "decode_reduce", "head_dim"),
                      integer_parameter(p, "decode_reduce", "nwg")};
  };
  e.run = [shape](vk::context& ctx, const tensor_map& in, const parameter_map& p) {
    const auto [nrows, head_dim, nwg] = shape(in, p);
    const tensor& partials = in.at("partials");
    const std::uint64_t rows_out = std::uint64_t{nrows} * head_dim;
    validate_decode_reduce(nrows, head_dim, nwg, partials.elements(), rows_out);
    const vk::buffer<float> partial_buffer = upload_f32(ctx, partials);
    vk::buffer<float> dst(ctx, rows_out);
    dst.fill(std::nanf(""));
    vk::recorder rec(ctx);
    record_decode_reduce(rec, partial_buffer, dst, nrows, head_dim, nwg);
    rec.submit_and_wait();
    return tensor_map{{"dst", download_f32(dst, {nrows, head_dim})}};
  };
  e.reference = [shape](const tensor_map& in, const parameter_map& p) {
    const auto [nrows, head_dim, nwg] = shape(in, p);
    return reference_map{
        {"dst", reference::decode_reduce(in.at("partials").as<float>(), nrows, head_dim, nwg)}};
  };
  e.demo_cases = [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<op_case> cases;
    struct shape_case {
      std::uint32_t nrows, head_dim, nwg;
    };
    for (const shape_case s : {shape_case{5, 64, 1}, {16, 256, 32}, {3, 512, 7}, {9, 128, 64}}) {
      tensor partials =
          random_f32({decode_partials_size(s.nrows, s.head_dim, s.nwg)}, rng, -1.0f, 1.0f);
      auto values = partials.as<float>();
      const std::size_t stats = std::size_t{s.nrows} * s.head_dim * s.nwg;
      std::uniform_real_distribution<float> sums(0.5f, 20.0f), maxima(-8.0f, 8.0f);
      std::bernoulli_distribution empty_slice(0.2);
      for (std::size_t r = 0; r < s.nrows; ++r)
        for (std::size_t w = 0; w < s.nwg; ++w) {
          // Row 0 is fully masked: every slice empty (S = 0, M = sentinel).
          const bool empty = r == 0 || empty_slice(rng);
          const std::size_t at = stats + 2 * (r * s.nwg + w);
          values[at] = empty ? 0.0f : sums(rng);
          values[at + 1] = empty ? -1.70141173e38f : maxima(rng);
          if (empty)
            for (std::size_t d = 0; d < s.head_dim; ++d)
              values[4 * (r * (s.head_dim / 4) * s.nwg + s.nwg * (d / 4) + w) + d % 4] = 0.0f;
        }
      cases.push_back(
          {"rows=" + std::to_string(s.nrows) + " D=" + std::to_string(s.head_dim) +
               " nwg=" + std::to_string(s.nwg),
           {{"partials", std::move(partials)}},
           {{"nrows", double(s.nrows)}, {"head_dim", double(s.head_dim)}, {"nwg", double(s.nwg)}}});
    }
    return cases;
  };
  // exp and the weighted sums in f32 against double: a few ulps of the
  // largest term, relative to the result.
  e.abs_tolerance = 1e-6;
  e.rel_tolerance = 1e-5;
  return e;
}

}  // namespace detail

// Every op, in a stable order.
inline const std::vector<op_entry>& catalog() {
  static const std::vector<op_entry> entries{detail::fwht_entry(), detail::decode_reduce_entry()};
  return entries;
}

}  // namespace tessel::kernels
