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

#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/op.hpp"
#include "tessel/reference/decode_f16.hpp"
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

// A device copy of a tensor of Ts, and a tensor of a device buffer's contents.
template <scalar T>
vk::buffer<T> upload(vk::context& ctx, const tensor& t) {
  vk::buffer<T> buffer(ctx, t.elements());
  buffer.upload(t.as<T>());
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
    const vk::buffer<float> buffer = upload<float>(ctx, data);
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
              {"nwg", "partials per row, 1..256", std::nullopt, ""}};
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
    const vk::buffer<float> partial_buffer = upload<float>(ctx, partials);
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

inline tensor random_f16(std::vector<std::uint64_t> shape, std::mt19937_64& rng, float low,
                         float high) {
  tensor t = tensor::zeros(scalar_kind::f16, std::move(shape));
  std::uniform_real_distribution<float> dist(low, high);
  for (f16& x : t.as<f16>()) x = to_f16(dist(rng));
  return t;
}

// A float parameter, with its default.
inline float float_parameter(const parameter_map& params, std::string_view op,
                             const std::string& name, float fallback) {
  const auto it = params.find(name);
  if (it == params.end()) return fallback;
  require(std::isfinite(it->second), op, name, it->second, "must be finite");
  return static_cast<float>(it->second);
}

inline op_entry decode_f16_entry() {
  op_entry e;
  e.name = "decode_f16";
  e.description =
      "Decode attention of one query per head over an f16 KV cache: GQA, causal / sliding-window "
      "masks, ring-buffer caches, optional logit softcap, split over NWG workgroups per head.";
  e.inputs = {
      {"q", scalar_kind::f32, "[batch, num_heads, head_dim]", "queries"},
      {"keys", scalar_kind::f16, "[batch, num_kv_heads, kv_capacity, head_dim]", "K cache"},
      {"values", scalar_kind::f16, "[batch, num_kv_heads, kv_capacity, head_dim]", "V cache"}};
  e.outputs = {{"out", scalar_kind::f32, "[batch, num_heads, head_dim]", "attention output"}};
  e.params = {{"kv_seq_len", "cached positions, 1..kv_capacity", std::nullopt, "keys.shape[2]"},
              {"mask", "0 none, 1 causal, 2 sliding window", 0.0, ""},
              {"sliding_window", "newest keys attended with mask 2", 0.0, ""},
              {"ring_start", "slot of the oldest entry of a wrapped ring", 0.0, ""},
              {"scale", "softmax scale; 0 = 1/sqrt(head_dim)", 0.0, ""},
              {"softcap", "logit soft cap; 0 = off", 0.0, ""},
              {"nwg", "slices per head; 0 = chosen for the device", 0.0, ""}};
  auto arguments = [](const tensor_map& in, const parameter_map& p) {
    constexpr std::string_view op = "decode_f16";
    const tensor& q = input(in, op, "q", scalar_kind::f32, 3);
    const tensor& keys = input(in, op, "keys", scalar_kind::f16, 4);
    const tensor& values = input(in, op, "values", scalar_kind::f16, 4);
    require(values.shape == keys.shape, op, "values shape", values.shape_text(),
            "must equal keys shape " + keys.shape_text());
    decode_f16_args a;
    a.batch = shape_parameter(p, op, "batch", q.shape[0]);
    a.num_heads = shape_parameter(p, op, "num_heads", q.shape[1]);
    a.head_dim = shape_parameter(p, op, "head_dim", q.shape[2]);
    require(keys.shape[0] == q.shape[0] && keys.shape[3] == q.shape[2], op, "keys shape",
            keys.shape_text(), "must be [batch, num_kv_heads, kv_capacity, head_dim] of q");
    a.num_kv_heads = shape_parameter(p, op, "num_kv_heads", keys.shape[1]);
    a.kv_capacity = shape_parameter(p, op, "kv_capacity", keys.shape[2]);
    a.kv_seq_len = integer_parameter(p, op, "kv_seq_len", a.kv_capacity);
    a.mask = static_cast<decode_mask>(integer_parameter(p, op, "mask", 0));
    a.sliding_window = integer_parameter(p, op, "sliding_window", 0);
    a.ring_start = integer_parameter(p, op, "ring_start", 0);
    a.scale = float_parameter(p, op, "scale", 0);
    a.softcap = float_parameter(p, op, "softcap", 0);
    a.nwg = integer_parameter(p, op, "nwg", 0);
    return a;
  };
  e.run = [arguments](vk::context& ctx, const tensor_map& in, const parameter_map& p) {
    const decode_f16_args a = arguments(in, p);
    const decode_plan plan = plan_decode_f16(ctx.device(), a);
    const vk::buffer<float> q = upload<float>(ctx, in.at("q"));
    const vk::buffer<f16> keys = upload<f16>(ctx, in.at("keys"));
    const vk::buffer<f16> values = upload<f16>(ctx, in.at("values"));
    vk::buffer<float> out(ctx, q.size());
    out.fill(std::nanf(""));
    std::optional<vk::buffer<float>> scratch;
    if (plan.scratch_floats) scratch.emplace(ctx, plan.scratch_floats);
    vk::recorder rec(ctx);
    record_decode_f16(rec, q, keys, values, out, scratch ? &*scratch : nullptr, a);
    rec.submit_and_wait();
    return tensor_map{{"out", download_f32(out, in.at("q").shape)}};
  };
  e.reference = [arguments](const tensor_map& in, const parameter_map& p) {
    const decode_f16_args a = arguments(in, p);
    return reference_map{
        {"out", reference::decode_f16(in.at("q").as<float>(), in.at("keys").as<f16>(),
                                      in.at("values").as<f16>(), a)}};
  };
  e.demo_cases = [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    struct demo_shape {
      std::uint32_t batch, heads, kv_heads, dim, seq, capacity, mask, window, ring;
      float softcap;
    };
    std::vector<op_case> cases;
    for (const demo_shape s : {demo_shape{1, 16, 8, 256, 1000, 1024, 1, 0, 0, 0},
                               {1, 16, 2, 512, 777, 777, 0, 0, 300, 0},
                               {2, 32, 8, 128, 300, 320, 2, 128, 0, 0},
                               {1, 8, 8, 64, 129, 160, 0, 0, 0, 30.0f}}) {
      op_case c;
      c.shape = "B=" + std::to_string(s.batch) + " H=" + std::to_string(s.heads) +
                " Hkv=" + std::to_string(s.kv_heads) + " D=" + std::to_string(s.dim) +
                " L=" + std::to_string(s.seq) + (s.mask == 2 ? " window" : "") +
                (s.ring ? " ring" : "") + (s.softcap > 0 ? " softcap" : "");
      c.inputs = {
          {"q", random_f32({s.batch, s.heads, s.dim}, rng, -1.0f, 1.0f)},
          {"keys", random_f16({s.batch, s.kv_heads, s.capacity, s.dim}, rng, -1.0f, 1.0f)},
          {"values", random_f16({s.batch, s.kv_heads, s.capacity, s.dim}, rng, -1.0f, 1.0f)}};
      c.params = {{"kv_seq_len", double(s.seq)},
                  {"mask", double(s.mask)},
                  {"sliding_window", double(s.window)},
                  {"ring_start", double(s.ring)},
                  {"softcap", double(s.softcap)}};
      cases.push_back(std::move(c));
    }
    return cases;
  };
  // f32 dot products and exp against double (see tests/kernels/decode_f16_test.cpp).
  e.abs_tolerance = 2e-6;
  e.rel_tolerance = 2e-5;
  return e;
}

}  // namespace detail

// Every op, in a stable order.
inline const std::vector<op_entry>& catalog() {
  static const std::vector<op_entry> entries{detail::fwht_entry(), detail::decode_reduce_entry(),
                                             detail::decode_f16_entry()};
  return entries;
}

}  // namespace tessel::kernels
