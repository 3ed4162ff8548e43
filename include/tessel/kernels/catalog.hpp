// The run-time catalog of host ops: how `tessel run`, `tessel run --list`,
// `tessel demo` and the tests reach every op by name with tensors. Each entry
// binds an op's typed host function and its double-precision reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/kernels/tq_decode.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "tessel/op.hpp"
#include "tessel/reference/decode_f16.hpp"
#include "tessel/reference/decode_reduce.hpp"
#include "tessel/reference/fwht.hpp"
#include "tessel/reference/prefill.hpp"
#include "tessel/reference/tq_decode.hpp"
#include "tessel/reference/turboquant.hpp"
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

// A 0/1 parameter.
inline bool flag_parameter(const parameter_map& params, std::string_view op,
                           const std::string& name, bool fallback) {
  const std::uint32_t value = integer_parameter(params, op, name, fallback ? 1 : 0);
  require(value <= 1, op, name, value, "must be 0 or 1");
  return value == 1;
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

// decode_reduce, or with `unrotate` decode_reduce_unrotate: the same
// inputs, parameters and demo cases.
inline op_entry decode_reduce_entry(bool unrotate) {
  op_entry e;
  e.name = unrotate ? "decode_reduce_unrotate" : "decode_reduce";
  e.description =
      unrotate ? "decode_reduce followed by the inverse TurboQuant rotation s * (H y) of every "
                 "merged row, in one kernel (decode over a cache whose V was rotated)."
               : "Merges NWG partial decode results (unnormalized O, sum S, max M per workgroup) "
                 "into normalized output rows; rows whose slices are all empty give exact zeros.";
  e.inputs = {{"partials", scalar_kind::f32, "[nrows * nwg * (head_dim + 2)]",
               "O chunks interleaved by workgroup, then (S, M) pairs"}};
  e.outputs = {{"dst", scalar_kind::f32, "[nrows, head_dim]",
                unrotate ? "merged rows, unrotated" : "merged rows"}};
  e.params = {{"nrows", "query rows (heads x sequences)", std::nullopt, ""},
              {"head_dim", "64, 128, 256 or 512", std::nullopt, ""},
              {"nwg", "partials per row, 1..256", std::nullopt, ""}};
  auto shape = [op = e.name](const tensor_map& in, const parameter_map& p) {
    input(in, op, "partials", scalar_kind::f32, 1);
    return std::tuple{integer_parameter(p, op, "nrows"), integer_parameter(p, op, "head_dim"),
                      integer_parameter(p, op, "nwg")};
  };
  e.run = [shape, unrotate, op = e.name](vk::context& ctx, const tensor_map& in,
                                         const parameter_map& p) {
    const auto [nrows, head_dim, nwg] = shape(in, p);
    const tensor& partials = in.at("partials");
    const std::uint64_t rows_out = std::uint64_t{nrows} * head_dim;
    validate_decode_reduce(nrows, head_dim, nwg, partials.elements(), rows_out, op);
    const vk::buffer<float> partial_buffer = upload<float>(ctx, partials);
    vk::buffer<float> dst(ctx, rows_out);
    dst.fill(std::nanf(""));
    vk::recorder rec(ctx);
    if (unrotate)
      record_decode_reduce_unrotate(rec, partial_buffer, dst, nrows, head_dim, nwg);
    else
      record_decode_reduce(rec, partial_buffer, dst, nrows, head_dim, nwg);
    rec.submit_and_wait();
    return tensor_map{{"dst", download_f32(dst, {nrows, head_dim})}};
  };
  e.reference = [shape, unrotate](const tensor_map& in, const parameter_map& p) {
    const auto [nrows, head_dim, nwg] = shape(in, p);
    const auto partials = in.at("partials").as<float>();
    return reference_map{
        {"dst", unrotate ? reference::decode_reduce_unrotate(partials, nrows, head_dim, nwg)
                         : reference::decode_reduce(partials, nrows, head_dim, nwg)}};
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
  // largest term, relative to the result; the rotation adds fwht's f32
  // butterflies (its tolerance).
  e.abs_tolerance = unrotate ? 1e-5 : 1e-6;
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

// The parameters every decode op takes besides its shape and its cache's:
// the attention's (decode_args). kv_seq_len defaults to the capacity,
// which `capacity_source` names.
inline std::vector<op_parameter> decode_attention_parameters(const std::string& capacity_source) {
  return {{"kv_seq_len", "cached positions, 1..kv_capacity", std::nullopt, capacity_source},
          {"mask", "0 none, 1 causal, 2 sliding window", 0.0, ""},
          {"sliding_window", "newest keys attended with mask 2", 0.0, ""},
          {"ring_start", "slot of the oldest entry of a wrapped ring", 0.0, ""},
          {"scale", "softmax scale; 0 = 1/sqrt(head_dim)", 0.0, ""},
          {"softcap", "logit soft cap; 0 = off", 0.0, ""},
          {"nwg", "slices per head; 0 = chosen for the device", 0.0, ""}};
}

// Reads the parameters of decode_attention_parameters into `a`, whose
// kv_capacity is already known.
inline void read_decode_attention_parameters(decode_args& a, const parameter_map& p,
                                             std::string_view op) {
  a.kv_seq_len = integer_parameter(p, op, "kv_seq_len", a.kv_capacity);
  a.mask = static_cast<decode_mask>(integer_parameter(p, op, "mask", 0));
  a.sliding_window = integer_parameter(p, op, "sliding_window", 0);
  a.ring_start = integer_parameter(p, op, "ring_start", 0);
  a.scale = float_parameter(p, op, "scale", 0);
  a.softcap = float_parameter(p, op, "softcap", 0);
  a.nwg = integer_parameter(p, op, "nwg", 0);
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
  e.params = decode_attention_parameters("keys.shape[2]");
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
    read_decode_attention_parameters(a, p, op);
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

inline op_entry tq_encode_entry() {
  op_entry e;
  e.name = "tq_encode";
  e.description =
      "TurboQuant encoder: rotates f32 rows (R = H(s*x), or not with rotate=0), normalizes them "
      "per norm block and writes codebook codes (4-bit nibbles, 5/6/8-bit bytes) and norms "
      "into a fresh zeroed cache at positions first_position.. (ring: slot = position mod "
      "kv_capacity). Codes are exact unless a quantizer input lies within 1e-5 of a boundary.";
  e.inputs = {{"src", scalar_kind::f32, "[num_kv_heads, n_tokens, head_dim]", "rows to encode"}};
  e.outputs = {{"codes", scalar_kind::u8, "[num_kv_heads, kv_capacity, head_dim * (4 or 8) / 8]",
                "the packed codes' bytes"},
               {"norms", scalar_kind::f32, "[num_kv_heads, kv_capacity, head_dim / 256 or 1]",
                "L2 norm (head_dim <= 256) or RMS of each 256-dim block (512)"}};
  e.params = {{"num_kv_heads", "KV heads", std::nullopt, "src.shape[0]"},
              {"n_tokens", "rows per head", std::nullopt, "src.shape[1]"},
              {"head_dim", "64, 128, 256 or 512", std::nullopt, "src.shape[2]"},
              {"kv_capacity", "positions per KV head in the cache", std::nullopt, ""},
              {"bits", "code width: 4, 5, 6 or 8", 4.0, ""},
              {"first_position", "position of src token 0", 0.0, ""},
              {"ring", "1: slot = position mod kv_capacity", 0.0, ""},
              {"rotate", "1: encode R(x) (K and V), 0: raw rows (hybrid V)", 1.0, ""},
              {"scale_factor_d512", "head_dim 512 block scale; 0 means 1.0", 0.0, ""}};
  auto shape = [](const tensor_map& in, const parameter_map& p) {
    constexpr std::string_view op = "tq_encode";
    const tensor& src = input(in, op, "src", scalar_kind::f32, 3);
    const tq_cache_format format{shape_parameter(p, op, "num_kv_heads", src.shape[0]),
                                 integer_parameter(p, op, "kv_capacity"),
                                 shape_parameter(p, op, "head_dim", src.shape[2]),
                                 integer_parameter(p, op, "bits", 4)};
    const tq_encode_args args{
        shape_parameter(p, op, "n_tokens", src.shape[1]),
        integer_parameter(p, op, "first_position", 0), flag_parameter(p, op, "ring", false),
        flag_parameter(p, op, "rotate", true), float_parameter(p, op, "scale_factor_d512", 0.0f)};
    validate_tq_encode(format, args, src.elements(), tq_code_words(format), tq_norm_count(format));
    return std::pair{format, args};
  };
  auto code_bytes_shape = [](const tq_cache_format& f) {
    return std::vector<std::uint64_t>{f.num_kv_heads, f.kv_capacity,
                                      4 * std::uint64_t{tq_words_per_position(f.head_dim, f.bits)}};
  };
  auto norms_shape = [](const tq_cache_format& f) {
    return std::vector<std::uint64_t>{f.num_kv_heads, f.kv_capacity,
                                      tq_norms_per_position(f.head_dim)};
  };
  e.run = [shape, code_bytes_shape, norms_shape](vk::context& ctx, const tensor_map& in,
                                                 const parameter_map& p) {
    const auto [format, args] = shape(in, p);
    const vk::buffer<float> src = upload<float>(ctx, in.at("src"));
    vk::buffer<std::uint32_t> codes(ctx, tq_code_words(format));
    codes.fill(0u);
    vk::buffer<float> norms(ctx, tq_norm_count(format));
    norms.fill(0.0f);
    vk::recorder rec(ctx);
    record_tq_encode(rec, src, codes, norms, format, args);
    rec.submit_and_wait();
    const std::vector<std::uint32_t> words = codes.download();
    tensor code_bytes = tensor::zeros(scalar_kind::u8, code_bytes_shape(format));
    std::memcpy(code_bytes.data.data(), words.data(), code_bytes.data.size());
    return tensor_map{{"codes", std::move(code_bytes)},
                      {"norms", download_f32(norms, norms_shape(format))}};
  };
  e.reference = [shape](const tensor_map& in, const parameter_map& p) {
    const auto [format, args] = shape(in, p);
    reference::tq_cache cache(format);
    reference::tq_encode(cache, in.at("src").as<float>(), args);
    std::vector<double> code_bytes;
    code_bytes.reserve(cache.codes.size() * 4);
    for (std::uint32_t word : cache.codes)
      for (int b = 0; b < 4; ++b) code_bytes.push_back((word >> (8 * b)) & 0xFF);
    return reference_map{{"codes", std::move(code_bytes)}, {"norms", cache.norms}};
  };
  e.demo_cases = [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    struct shape_case {
      std::uint32_t heads, dim, bits, tokens, capacity, first_position;
      bool ring, rotate;
      float scale_factor_d512;
    };
    std::vector<op_case> cases;
    for (const shape_case s : {shape_case{2, 256, 4, 5, 16, 3, false, true, 0.0f},
                               {3, 512, 8, 6, 8, 13, true, true, 0.0f},
                               {1, 128, 5, 9, 12, 0, false, false, 0.0f},
                               {4, 64, 6, 11, 7, 20, true, true, 0.0f},
                               {2, 512, 4, 1, 4, 2, false, false, 2.0f}}) {
      // Inputs clear of the decision boundaries: the codes are then exact
      // on every device, not only up to f32 rounding ties.
      const std::vector<float> rows = reference::tq_rows_clear_of_boundaries(
          rng, s.heads * s.tokens, s.dim, s.bits, s.rotate, s.scale_factor_d512);
      cases.push_back(
          {"H=" + std::to_string(s.heads) + " D=" + std::to_string(s.dim) +
               " bits=" + std::to_string(s.bits) + " T=" + std::to_string(s.tokens) + " cap=" +
               std::to_string(s.capacity) + (s.ring ? " ring" : "") + (s.rotate ? "" : " raw"),
           {{"src", tensor::from<float>({s.heads, s.tokens, s.dim}, std::span<const float>(rows))}},
           {{"kv_capacity", double(s.capacity)},
            {"bits", double(s.bits)},
            {"first_position", double(s.first_position)},
            {"ring", s.ring ? 1.0 : 0.0},
            {"rotate", s.rotate ? 1.0 : 0.0},
            {"scale_factor_d512", s.scale_factor_d512}}});
    }
    return cases;
  };
  // Codes must match exactly (any difference is >= 1, far above 1e-6 +
  // 1e-5 * 255); norms are f32 sums of squares against double.
  e.abs_tolerance = 1e-6;
  e.rel_tolerance = 1e-5;
  return e;
}

// The TurboQuant decode ops: q f32 [batch, num_heads, head_dim]; a
// quantized cache as u8 code bytes [batch, num_kv_heads, kv_capacity,
// bytes per position] (tq_encode's output with a batch axis) and f32 norms
// [batch, num_kv_heads, kv_capacity, norms per position]; an f16 cache as
// for decode_f16. The hybrid takes f16 keys and either value_codes +
// value_norms or f16 values.
inline op_entry tq_decode_entry(tq_decode_op which) {
  const std::string op(op_name(which));
  const bool hybrid = which == tq_decode_op::hybrid;
  op_entry e;
  e.name = op;
  e.description =
      which == tq_decode_op::nibble
          ? "Decode attention over 4-bit TurboQuant K and V caches (tq_encode's nibbles and "
            "norms): decode_f16's masks, rings, GQA and softcap; q in K's basis (rotated), the "
            "output in V's unless unrotate_output."
      : which == tq_decode_op::byte
          ? "Decode attention over 5/6/8-bit TurboQuant K and V caches (one code per byte, width "
            "`bits`): decode_f16's masks, rings, GQA and softcap; q in K's basis, the output in "
            "V's unless unrotate_output."
          : "Decode attention over an f16 K cache and a 5/6/8-bit TurboQuant V cache (or an f16 "
            "V): q in K's basis, the output in V's unless unrotate_output (the seed's hybrid: "
            "raw K, V encoded with rotate=0, so raw q and output).";
  const std::string quantized = "[batch, num_kv_heads, kv_capacity, bytes per position]";
  const std::string norms = "[batch, num_kv_heads, kv_capacity, head_dim / 256 or 1]";
  const std::string f16_cache = "[batch, num_kv_heads, kv_capacity, head_dim]";
  e.inputs = {{"q", scalar_kind::f32, "[batch, num_heads, head_dim]", "queries"}};
  if (hybrid) {
    e.inputs.push_back({"keys", scalar_kind::f16, f16_cache, "K cache"});
    e.inputs.push_back({"value_codes", scalar_kind::u8, quantized, "V codes", {}, true});
    e.inputs.push_back({"value_norms", scalar_kind::f32, norms, "V norms", {}, true});
    e.inputs.push_back({"values", scalar_kind::f16, f16_cache, "f16 V cache instead", {}, true});
  } else {
    e.inputs.push_back({"key_codes", scalar_kind::u8, quantized, "K codes"});
    e.inputs.push_back({"key_norms", scalar_kind::f32, norms, "K norms"});
    e.inputs.push_back({"value_codes", scalar_kind::u8, quantized, "V codes"});
    e.inputs.push_back({"value_norms", scalar_kind::f32, norms, "V norms"});
  }
  e.outputs = {{"out", scalar_kind::f32, "[batch, num_heads, head_dim]", "attention output"}};
  e.params = decode_attention_parameters("shape[2]");
  e.params.insert(
      e.params.end(),
      {{"nsg", "subgroups sharing a head's positions: 1, 2, 4; 0 = default", 0.0, ""},
       {"scale_factor_d512", "the encoder's head_dim 512 block scale; 0 means 1.0", 0.0, ""},
       {"fuse_fwht_pre", "1: q is raw and the kernel rotates it (K was rotated)", 0.0, ""},
       {"unrotate_output", "1: return the output in the natural basis (V was rotated)", 0.0, ""}});
  if (which != tq_decode_op::nibble) e.params.push_back({"bits", "code width: 5, 6 or 8", 8.0, ""});
  // The arguments, the caches' format and the input tensors, checked
  // against each other.
  auto arguments = [which, op](const tensor_map& in, const parameter_map& p) {
    const tensor& q = input(in, op, "q", scalar_kind::f32, 3);
    tq_decode_args a;
    a.batch = shape_parameter(p, op, "batch", q.shape[0]);
    a.num_heads = shape_parameter(p, op, "num_heads", q.shape[1]);
    a.head_dim = shape_parameter(p, op, "head_dim", q.shape[2]);
    a.bits = which == tq_decode_op::nibble ? 4 : integer_parameter(p, op, "bits", 8);
    a.values_f16 = which == tq_decode_op::hybrid && in.contains("values");
    const tensor& first_cache =
        input(in, op, which == tq_decode_op::hybrid ? "keys" : "key_codes",
              which == tq_decode_op::hybrid ? scalar_kind::f16 : scalar_kind::u8, 4);
    require(first_cache.shape[0] == q.shape[0], op, "cache shape", first_cache.shape_text(),
            "must have q's batch " + std::to_string(q.shape[0]));
    a.num_kv_heads = shape_parameter(p, op, "num_kv_heads", first_cache.shape[1]);
    a.kv_capacity = shape_parameter(p, op, "kv_capacity", first_cache.shape[2]);
    read_decode_attention_parameters(a, p, op);
    a.nsg = integer_parameter(p, op, "nsg", 0);
    a.scale_factor_d512 = float_parameter(p, op, "scale_factor_d512", 0);
    a.fuse_fwht_pre = flag_parameter(p, op, "fuse_fwht_pre", false);
    a.unrotate_output = flag_parameter(p, op, "unrotate_output", false);
    validate_tq_decode(which, a);
    const tq_cache_format f = tq_decode_cache_format(a);
    const std::vector<std::uint64_t> code_shape{
        a.batch, a.num_kv_heads, a.kv_capacity,
        4 * std::uint64_t{tq_words_per_position(a.head_dim, a.bits)}},
        norm_shape{a.batch, a.num_kv_heads, a.kv_capacity, tq_norms_per_position(a.head_dim)},
        f16_shape{a.batch, a.num_kv_heads, a.kv_capacity, a.head_dim};
    const auto expect = [&](const std::string& name, scalar_kind kind,
                            const std::vector<std::uint64_t>& shape) {
      const tensor& t = input(in, op, name, kind, 4);
      if (t.shape == shape) return;
      std::string text;
      for (std::uint64_t extent : shape)
        text += (text.empty() ? "[" : ", ") + std::to_string(extent);
      throw error(op, name + " shape = " + t.shape_text() + " must be " + text + "]");
    };
    if (which == tq_decode_op::hybrid) {
      expect("keys", scalar_kind::f16, f16_shape);
    } else {
      expect("key_codes", scalar_kind::u8, code_shape);
      expect("key_norms", scalar_kind::f32, norm_shape);
    }
    if (a.values_f16) {
      require(!in.contains("value_codes") && !in.contains("value_norms"), op, "values", "given",
              "excludes value_codes and value_norms");
      expect("values", scalar_kind::f16, f16_shape);
    } else {
      expect("value_codes", scalar_kind::u8, code_shape);
      expect("value_norms", scalar_kind::f32, norm_shape);
    }
    return std::pair{a, f};
  };
  e.run = [arguments, which](vk::context& ctx, const tensor_map& in, const parameter_map& p) {
    const auto [a, format] = arguments(in, p);
    const decode_plan plan = plan_tq_decode(ctx.device(), which, a);
    const auto words = [&](const std::string& name) {
      const tensor& bytes = in.at(name);
      vk::buffer<std::uint32_t> buffer(ctx, bytes.data.size() / 4);
      std::vector<std::uint32_t> host(buffer.size());
      std::memcpy(host.data(), bytes.data.data(), bytes.data.size());
      buffer.upload(host);
      return buffer;
    };
    const vk::buffer<float> q = upload<float>(ctx, in.at("q"));
    vk::buffer<float> out(ctx, q.size());
    out.fill(std::nanf(""));
    std::optional<vk::buffer<float>> scratch;
    if (plan.scratch_floats) scratch.emplace(ctx, plan.scratch_floats);
    std::optional<vk::buffer<std::uint32_t>> key_codes, value_codes;
    std::optional<vk::buffer<float>> key_norms, value_norms;
    std::optional<vk::buffer<f16>> keys, values;
    if (!a.values_f16) {
      value_codes.emplace(words("value_codes"));
      value_norms.emplace(upload<float>(ctx, in.at("value_norms")));
    } else {
      values.emplace(upload<f16>(ctx, in.at("values")));
    }
    const tq_cache_buffers value_buffers{value_codes ? &*value_codes : nullptr,
                                         value_norms ? &*value_norms : nullptr};
    vk::recorder rec(ctx);
    const vk::buffer<float>* scratch_buffer = scratch ? &*scratch : nullptr;
    if (which == tq_decode_op::hybrid) {
      keys.emplace(upload<f16>(ctx, in.at("keys")));
      record_tq_hybrid_decode(rec, q, *keys, value_buffers, values ? &*values : nullptr, out,
                              scratch_buffer, a);
    } else {
      key_codes.emplace(words("key_codes"));
      key_norms.emplace(upload<float>(ctx, in.at("key_norms")));
      const tq_cache_buffers key_buffers{&*key_codes, &*key_norms};
      if (which == tq_decode_op::nibble)
        record_tq_decode(rec, q, key_buffers, value_buffers, out, scratch_buffer, a);
      else
        record_tq_hb_decode(rec, q, key_buffers, value_buffers, out, scratch_buffer, a);
    }
    rec.submit_and_wait();
    return tensor_map{{"out", download_f32(out, in.at("q").shape)}};
  };
  // What the caches stand for, in double, as reference::tq_decode takes them.
  auto caches = [arguments, which](const tensor_map& in, const parameter_map& p) {
    const auto [a, format] = arguments(in, p);
    const auto dequantized = [&, format = format](const std::string& codes,
                                                  const std::string& norms) {
      reference::tq_cache cache(format);
      std::memcpy(cache.codes.data(), in.at(codes).data.data(), in.at(codes).data.size());
      const auto n = in.at(norms).as<float>();
      cache.norms.assign(n.begin(), n.end());
      return reference::tq_dequantize_cache(cache, a.scale_factor_d512);
    };
    const std::vector<double> keys = which == tq_decode_op::hybrid
                                         ? reference::widen_to_double(in.at("keys").as<f16>())
                                         : dequantized("key_codes", "key_norms");
    const std::vector<double> values = a.values_f16
                                           ? reference::widen_to_double(in.at("values").as<f16>())
                                           : dequantized("value_codes", "value_norms");
    return std::pair{keys, values};
  };
  e.reference = [arguments, caches, which](const tensor_map& in, const parameter_map& p) {
    const auto [keys, values] = caches(in, p);
    return reference_map{{"out", reference::tq_decode(which, in.at("q").as<float>(), keys, values,
                                                      arguments(in, p).first)}};
  };
  e.demo_cases = [which](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    struct demo_shape {
      std::uint32_t batch, heads, kv_heads, dim, seq, capacity, mask, window, ring, bits;
      float softcap;
      bool unrotate, values_f16;
    };
    const std::uint32_t wide = which == tq_decode_op::nibble ? 4 : 8;
    const std::uint32_t narrow = which == tq_decode_op::nibble ? 4 : 5;
    std::vector<op_case> cases;
    for (const demo_shape s :
         {demo_shape{1, 16, 8, 256, 1000, 1024, 1, 0, 0, wide, 0, false, false},
          {1, 16, 2, 512, 777, 777, 0, 0, 300, wide, 0, true, false},
          {2, 8, 4, 128, 300, 320, 2, 128, 0, narrow, 0, false, true},
          {1, 8, 8, 64, 129, 160, 0, 0, 0, narrow, 30.0f, false, false}}) {
      const bool values_f16 = s.values_f16 && which == tq_decode_op::hybrid;
      op_case c;
      c.shape = "B=" + std::to_string(s.batch) + " H=" + std::to_string(s.heads) +
                " Hkv=" + std::to_string(s.kv_heads) + " D=" + std::to_string(s.dim) +
                " L=" + std::to_string(s.seq) + " bits=" + std::to_string(s.bits) +
                (s.mask == 2 ? " window" : "") + (s.ring ? " ring" : "") +
                (s.softcap > 0 ? " softcap" : "") + (s.unrotate ? " raw q and output" : "") +
                (values_f16 ? " f16 V" : "");
      c.inputs = {{"q", random_f32({s.batch, s.heads, s.dim}, rng, -1.0f, 1.0f)}};
      // Every slot holds an encoded row (rotated unless it is the hybrid's V).
      const tq_cache_format f{s.batch * s.kv_heads, s.capacity, s.dim, s.bits};
      const auto encoded = [&](const std::string& codes, const std::string& norms, bool rotate) {
        const tensor rows = random_f32({f.num_kv_heads, s.capacity, s.dim}, rng, -2.0f, 2.0f);
        reference::tq_cache cache(f);
        reference::tq_encode(cache, rows.as<float>(), {s.capacity, 0, false, rotate, 0.0f});
        tensor code_bytes = tensor::zeros(
            scalar_kind::u8, {s.batch, s.kv_heads, s.capacity,
                              4 * std::uint64_t{tq_words_per_position(s.dim, s.bits)}});
        std::memcpy(code_bytes.data.data(), cache.codes.data(), code_bytes.data.size());
        const std::vector<float> norm_values(cache.norms.begin(), cache.norms.end());
        c.inputs[codes] = std::move(code_bytes);
        c.inputs[norms] =
            tensor::from<float>({s.batch, s.kv_heads, s.capacity, tq_norms_per_position(s.dim)},
                                std::span<const float>(norm_values));
      };
      const std::vector<std::uint64_t> f16_shape{s.batch, s.kv_heads, s.capacity, s.dim};
      if (which == tq_decode_op::hybrid)
        c.inputs["keys"] = random_f16(f16_shape, rng, -1.0f, 1.0f);
      else
        encoded("key_codes", "key_norms", true);
      if (values_f16)
        c.inputs["values"] = random_f16(f16_shape, rng, -1.0f, 1.0f);
      else
        encoded("value_codes", "value_norms", which != tq_decode_op::hybrid);
      c.params = {{"kv_seq_len", double(s.seq)},
                  {"mask", double(s.mask)},
                  {"sliding_window", double(s.window)},
                  {"ring_start", double(s.ring)},
                  {"softcap", double(s.softcap)},
                  {"fuse_fwht_pre", s.unrotate ? 1.0 : 0.0},
                  {"unrotate_output", s.unrotate ? 1.0 : 0.0}};
      if (which != tq_decode_op::nibble) c.params["bits"] = s.bits;
      cases.push_back(std::move(c));
    }
    return cases;
  };
  // As decode_f16 (f32 arithmetic against double on the same dequantized
  // values); the inverse rotation adds fwht's 1e-5. Rows decoded to f16 in
  // shared memory add up to reference::tq_f16_staging_bound per element:
  // its largest element on top.
  e.abs_tolerance = 1e-5;
  e.rel_tolerance = 2e-5;
  e.tolerance_note = "plus the largest element of reference::tq_f16_staging_bound";
  e.device_tolerance = [portable = e, arguments, caches, which](const target&, const tensor_map& in,
                                                                const parameter_map& p,
                                                                scalar_kind output) {
    op_tolerance bound = portable.tolerance(output);
    const auto [keys, values] = caches(in, p);
    const std::vector<double> staging = reference::tq_f16_staging_bound(
        which, in.at("q").as<float>(), keys, values, arguments(in, p).first);
    bound.abs += *std::max_element(staging.begin(), staging.end());
    return bound;
  };
  return e;
}

// The prefill problem a set of tensors and parameters describes, with every
// shape checked against the others.
inline prefill_problem prefill_problem_of(const tensor_map& in, const parameter_map& params) {
  constexpr std::string_view op = "prefill";
  const auto find = [&](const std::string& name) -> const tensor& {
    const auto it = in.find(name);
    if (it == in.end()) throw error(op, "input " + name + " is missing");
    require(it->second.shape.size() == 4, op, name + " rank", it->second.shape.size(), "must be 4");
    for (std::uint64_t extent : it->second.shape)
      require(extent <= UINT32_MAX, op, name + " shape", it->second.shape_text(),
              "must have extents that fit 32 bits");
    return it->second;
  };
  const tensor &q = find("q"), &k = find("k"), &v = find("v");
  prefill_problem p;
  p.layout = static_cast<attention_layout>(integer_parameter(params, op, "layout", 0));
  const bool seq_major = p.layout == attention_layout::seq_major;
  const auto at = [](const tensor& t, std::size_t axis) {
    return static_cast<std::uint32_t>(t.shape[axis]);
  };
  p.batch = at(q, 0);
  p.num_heads = at(q, seq_major ? 2 : 1);
  p.query_len = at(q, seq_major ? 1 : 2);
  p.head_dim = at(q, 3);
  p.num_kv_heads = at(k, seq_major ? 2 : 1);
  p.key_len = at(k, seq_major ? 1 : 2);
  require(k.shape[0] == p.batch && k.shape[3] == p.head_dim, op, "k shape", k.shape_text(),
          "must have q's batch and head_dim");
  require(v.shape == k.shape, op, "v shape", v.shape_text(), "must equal k's " + k.shape_text());
  const std::uint32_t causal = integer_parameter(params, op, "causal", 0);
  require(causal <= 1, op, "causal", causal, "must be 0 or 1");
  p.causal = causal == 1;
  p.query_offset = integer_parameter(params, op, "query_offset", 0);
  if (const auto it = params.find("scale"); it != params.end())
    p.scale = static_cast<float>(it->second);
  if (const auto it = in.find("mask"); it != in.end()) {
    const std::vector<std::uint64_t> rank2{p.query_len, p.key_len},
        rank4{p.batch, p.num_heads, p.query_len, p.key_len};
    require(it->second.shape == rank2 || it->second.shape == rank4, op, "mask shape",
            it->second.shape_text(),
            "must be [query_len, key_len] or [batch, num_heads, "
            "query_len, key_len]");
    p.mask_rank = static_cast<std::uint32_t>(it->second.shape.size());
  }
  return p;
}

template <class T>
tensor random_elements(std::vector<std::uint64_t> shape, std::mt19937_64& rng) {
  tensor t = tensor::zeros(scalar_traits<T>::kind, std::move(shape));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (T& x : t.as<T>()) {
    if constexpr (std::is_same_v<T, f16>)
      x = to_f16(dist(rng));
    else
      x = to_bf16(dist(rng));
  }
  return t;
}

template <class E>
vk::buffer<E> upload(vk::context& ctx, const tensor& t) {
  vk::buffer<E> buffer(ctx, t.elements());
  buffer.upload(t.as<E>());
  return buffer;
}

template <class T>
tensor run_prefill(vk::context& ctx, const prefill_problem& p, const tensor_map& in, bool use_blk) {
  const vk::buffer<T> q = upload<T>(ctx, in.at("q")), k = upload<T>(ctx, in.at("k")),
                      v = upload<T>(ctx, in.at("v"));
  vk::buffer<T> o(ctx, q.size());
  if constexpr (std::is_same_v<T, f16>)
    o.fill(f16{0x7E00});
  else
    o.fill(bf16{0x7FC0});
  vk::recorder rec(ctx);
  const auto mask_it = in.find("mask");
  if (mask_it == in.end()) {
    record_prefill(rec, p, q, k, v, o);
    rec.submit_and_wait();
  } else {
    // Records and submits while the mask (and its tile classes) live.
    const auto masked = [&]<class M>(std::type_identity<M>) {
      const vk::buffer<M> mask = upload<M>(ctx, mask_it->second);
      std::optional<vk::buffer<u8>> blk;
      if (use_blk) {
        blk.emplace(ctx, prefill_sizes_of(p).blk);
        record_prefill_blk(rec, p, mask, *blk);
      }
      record_prefill(rec, p, q, k, v, o, mask, blk ? &*blk : nullptr);
      rec.submit_and_wait();
    };
    if (mask_it->second.kind == scalar_kind::u8)
      masked(std::type_identity<u8>{});
    else
      masked(std::type_identity<T>{});
  }
  const std::vector<T> values = o.download();
  return tensor::from<T>(in.at("q").shape, std::span<const T>(values));
}

inline op_entry prefill_entry() {
  op_entry e;
  e.name = "prefill";
  e.description =
      "Flash-attention prefill: softmax(scale * Q K^T + mask) V per (batch, head), f16 or bf16 "
      "with f32 accumulation; GQA (head h reads KV head h / (num_heads / num_kv_heads)); "
      "optional additive (q's type, -inf blocks) or boolean (u8, 0 blocks) mask of rank 2 or 4; "
      "causal masking with query row i at position query_offset + i; rows attending nothing "
      "are 0.";
  const std::vector<scalar_kind> bf16_too{scalar_kind::bf16};
  e.inputs = {{"q", scalar_kind::f16,
               "[batch, num_heads, query_len, head_dim] (layout 1: "
               "[batch, query_len, num_heads, head_dim])",
               "queries", bf16_too},
              {"k", scalar_kind::f16,
               "[batch, num_kv_heads, key_len, head_dim] (layout 1: "
               "[batch, key_len, num_kv_heads, head_dim])",
               "keys, q's type", bf16_too},
              {"v", scalar_kind::f16, "as k", "values, q's type", bf16_too},
              {"mask",
               scalar_kind::f16,
               "[query_len, key_len] or [batch, num_heads, query_len, "
               "key_len]",
               "additive biases in q's type, or u8 (0 blocks)",
               {scalar_kind::bf16, scalar_kind::u8},
               true}};
  e.outputs = {{"o", scalar_kind::f16, "as q", "attention output, q's type", bf16_too}};
  e.params = {
      {"layout", "0 head-major [B, H, L, D], 1 sequence-major [B, L, H, D]", 0.0, ""},
      {"causal", "1: row i attends keys <= query_offset + i", 0.0, ""},
      {"query_offset", "absolute position of query row 0 among the keys (causal)", 0.0, ""},
      {"scale", "softmax scale", std::nullopt, "1 / sqrt(head_dim)"},
      {"blk", "1: classify the mask's tiles first and skip blocked ones (same output)", 0.0, ""}};
  e.run = [](vk::context& ctx, const tensor_map& in, const parameter_map& params) {
    const prefill_problem p = prefill_problem_of(in, params);
    const auto mask = in.find("mask");
    const std::optional<scalar_kind> mask_kind =
        mask == in.end() ? std::nullopt : std::optional<scalar_kind>(mask->second.kind);
    validate_prefill_types(in.at("q").kind, in.at("k").kind, in.at("v").kind, mask_kind);
    const std::uint32_t use_blk = integer_parameter(params, "prefill", "blk", 0);
    require(use_blk <= 1, "prefill", "blk", use_blk, "must be 0 or 1");
    require(use_blk == 0 || mask_kind.has_value(), "prefill", "blk", use_blk, "needs a mask input");
    validate_prefill(
        p,
        {in.at("q").elements(), in.at("k").elements(), in.at("v").elements(), in.at("q").elements(),
         mask_kind ? std::optional<std::uint64_t>(mask->second.elements()) : std::nullopt,
         std::nullopt});
    const tensor o = in.at("q").kind == scalar_kind::f16
                         ? run_prefill<f16>(ctx, p, in, use_blk == 1)
                         : run_prefill<bf16>(ctx, p, in, use_blk == 1);
    return tensor_map{{"o", o}};
  };
  e.reference = [](const tensor_map& in, const parameter_map& params) {
    const prefill_problem p = prefill_problem_of(in, params);
    const auto mask = in.find("mask");
    validate_prefill_types(
        in.at("q").kind, in.at("k").kind, in.at("v").kind,
        mask == in.end() ? std::nullopt : std::optional<scalar_kind>(mask->second.kind));
    const auto widen = [](const tensor& t) {
      switch (t.kind) {
        case scalar_kind::f16:
          return reference::widen(t.as<f16>());
        case scalar_kind::bf16:
          return reference::widen(t.as<bf16>());
        default:
          return reference::boolean_biases(t.as<u8>());
      }
    };
    const std::vector<float> biases = mask == in.end() ? std::vector<float>{} : widen(mask->second);
    return reference_map{{"o", reference::prefill(p, widen(in.at("q")), widen(in.at("k")),
                                                  widen(in.at("v")), biases)}};
  };
  e.demo_cases = [](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<op_case> cases;
    // Causal GQA with ragged lengths, f16, head-major.
    cases.push_back({"B=1 H=4/2 q=37 k=50 D=64 f16 causal",
                     {{"q", random_elements<f16>({1, 4, 37, 64}, rng)},
                      {"k", random_elements<f16>({1, 2, 50, 64}, rng)},
                      {"v", random_elements<f16>({1, 2, 50, 64}, rng)}},
                     {{"causal", 1}, {"query_offset", 13}}});
    // bf16, sequence-major, a rank-2 sliding-window mask used through tile classes.
    tensor window = tensor::zeros(scalar_kind::bf16, {20, 70});
    auto bias = window.as<bf16>();
    for (std::uint64_t i = 0; i < 20; ++i)
      for (std::uint64_t j = 0; j < 70; ++j)
        bias[i * 70 + j] = to_bf16(
            j <= 50 + i && 50 + i - j < 24 ? 0.0f : -std::numeric_limits<float>::infinity());
    cases.push_back({"B=2 H=2/1 q=20 k=70 D=128 bf16 window mask, blk",
                     {{"q", random_elements<bf16>({2, 20, 2, 128}, rng)},
                      {"k", random_elements<bf16>({2, 70, 1, 128}, rng)},
                      {"v", random_elements<bf16>({2, 70, 1, 128}, rng)},
                      {"mask", std::move(window)}},
                     {{"layout", 1}, {"blk", 1}}});
    // A rank-4 boolean mask with a fully blocked row, D = 256.
    tensor allowed = tensor::zeros(scalar_kind::u8, {1, 2, 9, 30});
    std::bernoulli_distribution attend(0.7);
    auto flags = allowed.as<u8>();
    for (std::size_t i = 0; i < flags.size(); ++i) flags[i] = (i / 30) % 9 != 4 && attend(rng);
    cases.push_back({"B=1 H=2/2 q=9 k=30 D=256 f16 boolean mask",
                     {{"q", random_elements<f16>({1, 2, 9, 256}, rng)},
                      {"k", random_elements<f16>({1, 2, 30, 256}, rng)},
                      {"v", random_elements<f16>({1, 2, 30, 256}, rng)},
                      {"mask", std::move(allowed)}},
                     {}});
    return cases;
  };
  // The output is rounded once to its type: half an ulp (2^-11 for f16,
  // 2^-8 for bf16) relative, plus 1e-5 for the f32 arithmetic before.
  e.abs_tolerance = 1e-5;
  e.rel_tolerance = 1.0 / 256;
  e.kind_tolerances = {{scalar_kind::f16, {1e-5, 1.0 / 2048}},
                       {scalar_kind::bf16, {1e-5, 1.0 / 256}}};
  // Where record_prefill takes the cooperative-matrix kernel, its f16
  // probabilities add up to prefill_coopmat_probability_error(max |v|).
  e.tolerance_note =
      "on a device running the cooperative-matrix kernel: plus 2^-10 * max |v| absolute";
  e.device_tolerance = [portable = e](const target& t, const tensor_map& in,
                                      const parameter_map& params, scalar_kind output) {
    op_tolerance bound = portable.tolerance(output);
    const prefill_problem p = prefill_problem_of(in, params);
    if (resolve_prefill_path(prefill_path::automatic, t, p.head_dim) == prefill_path::coopmat)
      bound.abs += prefill_coopmat_probability_error(max_magnitude(in.at("v")));
    return bound;
  };
  return e;
}

}  // namespace detail

// Every op, in a stable order.
inline const std::vector<op_entry>& catalog() {
  static const std::vector<op_entry> entries{detail::fwht_entry(),
                                             detail::decode_reduce_entry(false),
                                             detail::decode_reduce_entry(true),
                                             detail::decode_f16_entry(),
                                             detail::tq_encode_entry(),
                                             detail::tq_decode_entry(tq_decode_op::nibble),
                                             detail::tq_decode_entry(tq_decode_op::byte),
                                             detail::tq_decode_entry(tq_decode_op::hybrid),
                                             detail::prefill_entry()};
  return entries;
}

}  // namespace tessel::kernels
