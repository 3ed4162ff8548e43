// The kernels `tessel bench` measures, by suite. Each entry names its shape
// parameters, lists the benchmark shapes, a sweep over the sequence
// length (the plot's x axis) and tiny shapes for --quick, and prepares one
// shape: input sets on the device, bytes moved and FLOPs per call, and a
// function recording one call on a given input set.
//
// Adding a kernel: write a prepare function like prepare_tq_encode (fill
// the input sets, count the bytes it must move and the FLOPs it must do,
// record the host op) and add one bench_kernel to bench_kernels().
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tessel/bench/timing.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/tq_decode.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::cli {

// Values of a kernel's shape parameters, in the order of bench_kernel::dims.
struct bench_shape {
  const std::vector<std::string_view>* dims = nullptr;
  std::vector<std::uint32_t> values;

  std::uint32_t operator[](std::string_view dim) const {
    for (std::size_t i = 0; i < dims->size(); ++i)
      if ((*dims)[i] == dim) return values[i];
    throw error("bench", "shape has no parameter " + std::string(dim));
  }
};

// One shape, ready to time.
struct bench_case {
  double bytes = 0;  // the least a call must read and write
  double flops = 0;  // matrix work (multiply-add = 2); 0 for memory-bound kernels
  int sets = 1;      // input sets, used in turn
  std::function<void(vk::recorder&, int set)> record;
};

struct bench_kernel {
  std::string_view name;
  std::string_view suite;
  std::vector<std::string_view> dims;
  std::string_view length_dim;  // the sequence length: the plot's x axis
  std::string_view length_meaning;
  std::vector<std::vector<std::uint32_t>> shapes;
  std::vector<std::uint32_t> sweep_base;  // the length entry is replaced
  std::vector<std::uint32_t> sweep_lengths;
  std::vector<std::vector<std::uint32_t>> quick_shapes;
  std::vector<std::uint32_t> quick_lengths;
  bench_case (*prepare)(vk::context&, const bench_shape&);
};

namespace bench_detail {

// Input values repeat with a period of 2^20: timings do not depend on them,
// and drawing a billion random numbers would take longer than the benchmark.
template <class T, class Convert>
std::vector<T> random_values(std::uint64_t count, Convert convert, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<T> period(std::min<std::uint64_t>(count, 1u << 20));
  for (T& x : period) x = convert(uniform(rng));
  std::vector<T> out(count);
  for (std::uint64_t i = 0; i < count; ++i) out[i] = period[i % period.size()];
  return out;
}

inline float as_float(float x) {
  return x;
}

// A device copy of `host` per input set.
template <class T>
std::shared_ptr<std::vector<vk::buffer<T>>> upload_sets(vk::context& ctx,
                                                        const std::vector<T>& host, int sets) {
  auto out = std::make_shared<std::vector<vk::buffer<T>>>();
  for (int i = 0; i < sets; ++i) {
    out->emplace_back(ctx, host.size());
    out->back().upload(host);
  }
  return out;
}

template <class T>
std::shared_ptr<std::vector<vk::buffer<T>>> output_sets(vk::context& ctx, std::uint64_t count,
                                                        int sets) {
  auto out = std::make_shared<std::vector<vk::buffer<T>>>();
  for (int i = 0; i < sets; ++i) out->emplace_back(ctx, std::max<std::uint64_t>(count, 1));
  return out;
}

}  // namespace bench_detail

// decode_f16 with the plan record_decode_f16 chooses. Bytes: K and V read
// once, q read and the output written.
inline bench_case prepare_decode_f16(vk::context& ctx, const bench_shape& s) {
  using namespace bench_detail;
  kernels::decode_f16_args a;
  a.batch = s["B"];
  a.num_heads = s["H"];
  a.num_kv_heads = s["Hkv"];
  a.head_dim = s["D"];
  a.kv_seq_len = a.kv_capacity = s["L"];
  const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), a);
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * a.head_dim;
  const std::uint64_t rows = std::uint64_t{a.batch} * a.num_heads * a.head_dim;
  bench_case c;
  c.bytes = 2.0 * cache * sizeof(f16) + 2.0 * rows * sizeof(float);
  c.sets = bench::rotation_sets(static_cast<std::uint64_t>(c.bytes));
  const auto cache_values = random_values<f16>(cache, to_f16, 1);
  auto q = upload_sets(ctx, random_values<float>(rows, as_float, 2), c.sets);
  auto k = upload_sets(ctx, cache_values, c.sets);
  auto v = upload_sets(ctx, cache_values, c.sets);
  auto out = output_sets<float>(ctx, rows, c.sets);
  auto scratch = output_sets<float>(ctx, plan.scratch_floats, c.sets);
  c.record = [=](vk::recorder& rec, int i) {
    kernels::record_decode_f16(rec, (*q)[i], (*k)[i], (*v)[i], (*out)[i], &(*scratch)[i], a);
  };
  return c;
}

// Prefill of L queries over L keys (self-attention of a prompt), without a
// mask. Bytes: Q, K, V read and O written once; FLOPs 4 B H L^2 D (QK^T and
// PV), halved when causal.
template <class T>
bench_case prepare_prefill(vk::context& ctx, const bench_shape& s) {
  using namespace bench_detail;
  kernels::prefill_problem p;
  p.batch = s["B"];
  p.num_heads = s["H"];
  p.num_kv_heads = s["Hkv"];
  p.query_len = p.key_len = s["L"];
  p.head_dim = s["D"];
  p.causal = s["causal"] != 0;
  kernels::validate_prefill_problem(p);
  const kernels::prefill_sizes n = kernels::prefill_sizes_of(p);
  bench_case c;
  c.bytes = double(n.q + n.k + n.v + n.o) * sizeof(T);
  c.flops = 4.0 * p.batch * p.num_heads * p.query_len * double(p.key_len) * p.head_dim *
            (p.causal ? 0.5 : 1.0);
  c.sets = bench::rotation_sets(static_cast<std::uint64_t>(c.bytes));
  constexpr auto convert = [](float x) {
    if constexpr (std::same_as<T, bf16>)
      return to_bf16(x);
    else
      return to_f16(x);
  };
  auto q = upload_sets(ctx, random_values<T>(n.q, convert, 1), c.sets);
  const auto keys = random_values<T>(n.k, convert, 2);
  auto k = upload_sets(ctx, keys, c.sets);
  auto v = upload_sets(ctx, keys, c.sets);
  auto o = output_sets<T>(ctx, n.o, c.sets);
  c.record = [=](vk::recorder& rec, int i) {
    kernels::record_prefill<T>(rec, p, (*q)[i], (*k)[i], (*v)[i], (*o)[i]);
  };
  return c;
}

// tq_encode of T new rows per KV head into an empty cache of T positions.
// Bytes: the f32 rows read, codes and norms written.
inline bench_case prepare_tq_encode(vk::context& ctx, const bench_shape& s) {
  using namespace bench_detail;
  const kernels::tq_cache_format format{s["Hkv"], s["T"], s["D"], s["bits"]};
  kernels::tq_encode_args args;
  args.n_tokens = s["T"];
  const std::uint64_t rows =
      std::uint64_t{format.num_kv_heads} * format.kv_capacity * format.head_dim;
  kernels::validate_tq_encode(format, args, rows, kernels::tq_code_words(format),
                              kernels::tq_norm_count(format));
  bench_case c;
  c.bytes = double(rows) * sizeof(float) + double(kernels::tq_cache_bytes(format));
  c.sets = bench::rotation_sets(static_cast<std::uint64_t>(c.bytes));
  auto src = upload_sets(ctx, random_values<float>(rows, as_float, 1), c.sets);
  auto codes = output_sets<std::uint32_t>(ctx, kernels::tq_code_words(format), c.sets);
  auto norms = output_sets<float>(ctx, kernels::tq_norm_count(format), c.sets);
  c.record = [=](vk::recorder& rec, int i) {
    kernels::record_tq_encode(rec, (*src)[i], (*codes)[i], (*norms)[i], format, args);
  };
  return c;
}

// TurboQuant decode with the plan the op chooses: K and V bits 4
// (tq_decode) or 5, 6, 8 (tq_hb_decode), or the hybrid's f16 K with V bits
// 5, 6, 8 or 16 (f16). Bytes: every cache byte read once (codes, norms,
// f16 rows), q read and the output written. The codes are random words and
// the norms positive: the time does not depend on the values.
template <kernels::tq_decode_op Op>
bench_case prepare_tq_decode(vk::context& ctx, const bench_shape& s) {
  using namespace bench_detail;
  constexpr bool hybrid = Op == kernels::tq_decode_op::hybrid;
  kernels::tq_decode_args a;
  a.batch = s["B"];
  a.num_heads = s["H"];
  a.num_kv_heads = s["Hkv"];
  a.head_dim = s["D"];
  a.kv_seq_len = a.kv_capacity = s["L"];
  a.bits = s["bits"];
  a.values_f16 = hybrid && a.bits == 16;
  const kernels::decode_plan plan = kernels::plan_tq_decode(ctx.device(), Op, a);
  const kernels::tq_cache_format format = kernels::tq_decode_cache_format(a);
  const std::uint64_t rows = std::uint64_t{a.batch} * a.num_heads * a.head_dim;
  const std::uint64_t f16_cache = std::uint64_t{format.num_kv_heads} * a.kv_capacity * a.head_dim;
  bench_case c;
  c.bytes = double(kernels::tq_decode_position_bytes(Op, a)) * format.num_kv_heads * a.kv_capacity +
            2.0 * rows * sizeof(float);
  c.sets = bench::rotation_sets(static_cast<std::uint64_t>(c.bytes));
  const auto word = [](float x) { return std::bit_cast<std::uint32_t>(x); };
  const auto norm = [](float x) { return 2.0f + x; };
  auto q = upload_sets(ctx, random_values<float>(rows, as_float, 2), c.sets);
  auto out = output_sets<float>(ctx, rows, c.sets);
  auto scratch = output_sets<float>(ctx, plan.scratch_floats, c.sets);
  // K and V in distinct buffers, so neither read finds the other in a cache.
  const bool quantized_values = kernels::tq_quantized_values(Op, a);
  const auto codes = [&](bool used, std::uint64_t seed) {
    return upload_sets(
        ctx, random_values<std::uint32_t>(used ? kernels::tq_code_words(format) : 1, word, seed),
        c.sets);
  };
  const auto norms = [&](bool used, std::uint64_t seed) {
    return upload_sets(
        ctx, random_values<float>(used ? kernels::tq_norm_count(format) : 1, norm, seed), c.sets);
  };
  const auto f16_rows = [&](bool used, std::uint64_t seed) {
    return upload_sets(ctx, random_values<f16>(used ? f16_cache : 1, to_f16, seed), c.sets);
  };
  auto key_codes = codes(!hybrid, 3), value_codes = codes(quantized_values, 4);
  auto key_norms = norms(!hybrid, 5), value_norms = norms(quantized_values, 6);
  auto keys = f16_rows(hybrid, 7), values = f16_rows(!quantized_values, 8);
  c.record = [=](vk::recorder& rec, int i) {
    const kernels::tq_cache_buffers k{&(*key_codes)[i], &(*key_norms)[i]};
    const kernels::tq_cache_buffers v{&(*value_codes)[i], &(*value_norms)[i]};
    if constexpr (Op == kernels::tq_decode_op::nibble)
      kernels::record_tq_decode(rec, (*q)[i], k, v, (*out)[i], &(*scratch)[i], a);
    else if constexpr (Op == kernels::tq_decode_op::byte)
      kernels::record_tq_hb_decode(rec, (*q)[i], k, v, (*out)[i], &(*scratch)[i], a);
    else
      kernels::record_tq_hybrid_decode(
          rec, (*q)[i], (*keys)[i], a.values_f16 ? kernels::tq_cache_buffers{} : v,
          a.values_f16 ? &(*values)[i] : nullptr, (*out)[i], &(*scratch)[i], a);
  };
  return c;
}

// A TurboQuant decode op's entry: decode_f16's shape with the code width
// last, swept and run by --quick as decode_f16 is, at widths `sweep_bits`
// and `quick_bits`.
template <kernels::tq_decode_op Op>
bench_kernel tq_decode_kernel(std::vector<std::vector<std::uint32_t>> shapes,
                              std::uint32_t sweep_bits, std::uint32_t quick_bits) {
  return {kernels::op_name(Op),
          "tq",
          {"B", "H", "Hkv", "D", "L", "bits"},
          "L",
          "tokens in the cache",
          std::move(shapes),
          {1, 16, 8, 256, 0, sweep_bits},
          {512, 1024, 2048, 4096, 8192, 16384, 32768},
          {{2, 8, 2, 128, 1000, quick_bits}},
          {64, 256, 1024},
          prepare_tq_decode<Op>};
}

inline const std::vector<bench_kernel>& bench_kernels() {
  static const std::vector<bench_kernel> list = {
      {"decode_f16",
       "decode",
       {"B", "H", "Hkv", "D", "L"},
       "L",
       "tokens in the cache",
       {{1, 16, 8, 256, 4096},
        {1, 16, 8, 256, 32768},
        {1, 16, 2, 512, 32768},
        {8, 32, 8, 128, 32768}},
       {1, 16, 8, 256, 0},
       {512, 1024, 2048, 4096, 8192, 16384, 32768},
       {{2, 8, 2, 128, 1000}},
       {64, 256, 1024},
       prepare_decode_f16},
      {"prefill_bf16",
       "prefill",
       {"B", "H", "Hkv", "L", "D", "causal"},
       "L",
       "prompt length: queries = keys",
       {{1, 16, 8, 2048, 256, 1},
        {1, 16, 8, 8192, 256, 1},
        {1, 16, 2, 8192, 512, 1},
        {32, 12, 12, 512, 64, 0},
        {4, 32, 8, 8192, 128, 1}},
       {1, 16, 8, 0, 128, 1},
       {512, 1024, 2048, 4096, 8192},
       {{1, 2, 1, 40, 64, 1}},
       {16, 32, 64},
       prepare_prefill<bf16>},
      {"prefill_f16",
       "prefill",
       {"B", "H", "Hkv", "L", "D", "causal"},
       "L",
       "prompt length: queries = keys",
       {{1, 16, 8, 8192, 256, 0}},
       {},
       {},
       {{1, 2, 2, 33, 64, 0}},
       {},
       prepare_prefill<f16>},
      {"tq_encode",
       "tq",
       {"Hkv", "T", "D", "bits"},
       "T",
       "tokens encoded",
       {{8, 1, 256, 4},
        {8, 4096, 256, 4},
        {8, 32768, 256, 4},
        {2, 32768, 512, 4},
        {8, 32768, 128, 8}},
       {8, 0, 256, 4},
       {512, 2048, 8192, 32768},
       {{2, 5, 64, 4}},
       {16, 64, 256},
       prepare_tq_encode},
      tq_decode_kernel<kernels::tq_decode_op::nibble>(
          {{1, 16, 8, 256, 32768, 4}, {1, 16, 2, 512, 32768, 4}, {1, 16, 8, 256, 4096, 4}}, 4, 4),
      tq_decode_kernel<kernels::tq_decode_op::byte>({{1, 16, 8, 256, 32768, 8},
                                                     {1, 16, 2, 512, 32768, 8},
                                                     {1, 16, 8, 256, 32768, 6},
                                                     {1, 16, 8, 256, 32768, 5}},
                                                    8, 5),
      tq_decode_kernel<kernels::tq_decode_op::hybrid>({{1, 16, 8, 256, 32768, 8},
                                                       {1, 16, 2, 512, 32768, 8},
                                                       {1, 16, 8, 256, 32768, 16},
                                                       {1, 16, 2, 512, 32768, 16}},
                                                      8, 6),
  };
  return list;
}

}  // namespace tessel::cli
