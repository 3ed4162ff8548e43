// The cooperative-matrix prefill (kernels/prefill_coopmat.hpp) on a GPU that
// has it: correctness of every variant against the double reference, then
// GPU time at the shapes of issue 7 next to the portable kernel, the
// device's cooperative-matrix rate and the GEMM ceiling.
//
//   prefill_check           all four parts
//   prefill_check --check   correctness of the default tiles
//   prefill_check --bench   timing of the default tiles and the portable
//                           kernel, then the ceiling
//   prefill_check --ceiling the cooperative-matrix GEMM
//                           (bench/coopmat_gemm.hpp) at each tile shape of
//                           gemm_sweep_tiles: checked against a double
//                           GEMM, then timed at M = N = K = 8192
//   prefill_check --sweep   every tile shape of each issue shape
//                           (sweep_tiles below), each checked on three
//                           small cases, then timed
//   prefill_check --compile every sweep and GEMM variant compiled and
//                           validated for the NVIDIA target, no device
//                           needed (before spending device time on them)
//
// Options combine. Sweep lines: "SWEEP PASS|FAIL <shape> <variant> ...
// ms TFLOP/s"; a variant that fails its check is not timed. Ceiling lines:
// "GEMM PASS|FAIL <variant> ... TFLOP/s".
// Check lines: "PASS|FAIL <case>: max error E (tolerance at that element T),
// portable E" for every head dim (64, 128, 256, 512), I/O type (f16, bf16)
// and case (ragged lengths, GQA, both layouts, causal with offsets, masks of
// both kinds and ranks with and without tile classes, a K/V cache poisoned
// with NaN past key_len, bf16 values near f16's limits). The tolerance is
// the coopmat kernel's documented bound: half an ulp of the output type
// relative, plus 2^-10 * max |v| for the f16 probabilities (see
// prefill_coopmat.hpp), plus 1e-5. Exit status 1 when any case fails or the
// device has no cooperative matrices.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tessel/bench/coopmat_gemm.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/reference/prefill.hpp"
#include "tessel/vk/compiler.hpp"

namespace {

using namespace tessel;
using kernels::attention_layout;
using kernels::prefill_path;
using kernels::prefill_problem;

constexpr float inf = std::numeric_limits<float>::infinity();

enum class mask_kind { none, additive, boolean };

template <class T>
T round_to(float x) {
  if constexpr (std::is_same_v<T, f16>)
    return to_f16(x);
  else
    return to_bf16(x);
}

template <class T>
constexpr T nan_of() {
  if constexpr (std::is_same_v<T, f16>)
    return f16{0x7E00};
  else
    return bf16{0x7FC0};
}

struct check_case {
  std::string name;
  prefill_problem problem;
  mask_kind mask = mask_kind::none;
  bool blk = false;
  std::uint32_t window = 0;  // > 0: a sliding-window mask instead of random biases
  bool near_limits = false;  // bf16 V near +-65504, Q and K with f16-subnormal values
};

prefill_problem shape(std::uint32_t d, std::uint32_t batch, std::uint32_t heads,
                      std::uint32_t kv_heads, std::uint32_t query_len, std::uint32_t key_len,
                      attention_layout layout = attention_layout::head_major) {
  prefill_problem p;
  p.head_dim = d;
  p.batch = batch;
  p.num_heads = heads;
  p.num_kv_heads = kv_heads;
  p.query_len = query_len;
  p.key_len = key_len;
  p.layout = layout;
  return p;
}

std::vector<check_case> cases_for(std::uint32_t d, bool bf16_io) {
  using L = attention_layout;
  std::vector<check_case> out;
  auto add = [&](std::string name, prefill_problem p, mask_kind m = mask_kind::none,
                 bool blk = false) {
    out.push_back({std::move(name), p, m, blk, 0, false});
  };
  add("ragged gqa2 head_major", shape(d, 2, 4, 2, 37, 75));
  add("ragged gqa3 seq_major", shape(d, 1, 3, 1, 70, 45, L::seq_major));
  prefill_problem p = shape(d, 1, 4, 2, 50, 91, L::seq_major);
  p.causal = true;
  p.query_offset = 41;  // bottom-right aligned
  add("causal offset 41", p);
  p = shape(d, 2, 2, 1, 33, 60);
  p.causal = true;
  p.query_offset = 7;
  p.kv_capacity = 72;  // positions 60..71 hold NaN
  add("causal offset 7, cache NaN past key_len", p);
  add("additive rank2 + blk", shape(d, 1, 2, 2, 45, 130), mask_kind::additive, true);
  p = shape(d, 2, 2, 1, 29, 67, L::seq_major);
  p.mask_rank = 4;
  add("boolean rank4 + blk seq_major", p, mask_kind::boolean, true);
  p = shape(d, 1, 4, 1, 40, 80);
  p.mask_rank = 4;
  p.causal = true;
  p.query_offset = 40;
  add("additive rank4 causal", p, mask_kind::additive);
  add("boolean rank2 no blk", shape(d, 1, 2, 1, 64, 128), mask_kind::boolean);
  add("aligned 128x128 boolean + blk", shape(d, 1, 2, 2, 128, 128), mask_kind::boolean, true);
  p = shape(d, 1, 2, 2, 100, 300);
  p.query_offset = 200;
  out.push_back({"sliding window 40 + blk", p, mask_kind::additive, true, 40, false});
  add("one query one key", shape(d, 1, 1, 1, 1, 1));
  if (bf16_io) out.push_back({"bf16 near f16 limits", shape(d, 1, 2, 1, 30, 50), {}, {}, 0, true});
  return out;
}

// The biases of a case (as the reference reads them, rounded to T), empty
// without a mask.
template <class T>
std::vector<float> make_biases(const check_case& c, std::mt19937_64& rng) {
  const prefill_problem& p = c.problem;
  if (c.mask == mask_kind::none) return {};
  const std::uint64_t planes = p.mask_rank == 4 ? std::uint64_t{p.batch} * p.num_heads : 1;
  std::vector<float> b(planes * p.query_len * p.key_len);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_real_distribution<float> bias(-3, 3);
  for (std::uint64_t plane = 0; plane < planes; ++plane)
    for (std::uint32_t i = 0; i < p.query_len; ++i)
      for (std::uint32_t j = 0; j < p.key_len; ++j) {
        float& x = b[(plane * p.query_len + i) * p.key_len + j];
        if (c.window > 0) {
          const std::int64_t position = std::int64_t{p.query_offset} + i;
          x = j <= position && position - j < c.window ? 0 : -inf;
        } else if (i == 3 || unit(rng) < 0.25) {
          x = -inf;  // row 3 attends nothing: exact zeros
        } else {
          x = c.mask == mask_kind::boolean || unit(rng) < 0.3 ? 0 : bias(rng);
        }
        x = to_float(round_to<T>(x));
      }
  return b;
}

struct outcome {
  double max_error = 0, tolerance_there = 0;
  bool pass = true;
};

template <class T>
outcome compare(const std::vector<T>& got, const std::vector<double>& want, double max_v) {
  const double rel = std::is_same_v<T, f16> ? 1.0 / 2048 : 1.0 / 256;
  const double abs_tol = 1e-5 + kernels::prefill_coopmat_probability_error(max_v);
  outcome o;
  double worst_ratio = -1;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = to_float(got[i]);
    const double tol = abs_tol + rel * std::abs(want[i]);
    const double err = std::isfinite(g) ? std::abs(g - want[i]) : inf;
    // A row of exact zeros in the reference must be +0 bit for bit.
    const bool zero_ok = want[i] != 0 || got[i].bits == 0;
    if (!(err <= tol) || !zero_ok) o.pass = false;
    o.max_error = std::max(o.max_error, err);
    if (err / tol > worst_ratio) {
      worst_ratio = err / tol;
      o.tolerance_there = tol;
    }
  }
  return o;
}

// Runs a case with `record(rec, q, k, v, o, mask or nullptr, blk or
// nullptr)` on an output poisoned with NaN.
template <class T, class Record>
std::vector<T> run_with(vk::context& ctx, const check_case& c, const std::vector<T>& hq,
                        const std::vector<T>& hk, const std::vector<T>& hv,
                        const std::vector<float>& biases, Record record) {
  const prefill_problem& p = c.problem;
  vk::buffer<T> q(ctx, hq.size()), k(ctx, hk.size()), v(ctx, hv.size()), o(ctx, hq.size());
  q.upload(hq);
  k.upload(hk);
  v.upload(hv);
  o.fill(nan_of<T>());
  vk::recorder rec(ctx);
  const auto with_mask = [&]<class M>(const std::vector<M>& host) {
    vk::buffer<M> mask(ctx, host.size());
    mask.upload(host);
    std::optional<vk::buffer<u8>> blk;
    if (c.blk) {
      blk.emplace(ctx, kernels::prefill_sizes_of(p).blk);
      blk->fill(0xEE);
      kernels::record_prefill_blk(rec, p, mask, *blk);
    }
    record(rec, q, k, v, o, &mask, blk ? &*blk : nullptr);
    rec.submit_and_wait();
  };
  if (c.mask == mask_kind::additive) {
    std::vector<T> m(biases.size());
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = round_to<T>(biases[i]);
    with_mask(m);
  } else if (c.mask == mask_kind::boolean) {
    std::vector<u8> m(biases.size());
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = biases[i] == 0 ? 1 : 0;
    with_mask(m);
  } else {
    record(rec, q, k, v, o, static_cast<const vk::buffer<T>*>(nullptr), nullptr);
    rec.submit_and_wait();
  }
  return o.download();
}

template <class T>
std::vector<T> run(vk::context& ctx, const check_case& c, const std::vector<T>& hq,
                   const std::vector<T>& hk, const std::vector<T>& hv,
                   const std::vector<float>& biases, prefill_path path) {
  return run_with(ctx, c, hq, hk, hv, biases,
                  [&](vk::recorder& rec, const auto& q, const auto& k, const auto& v, const auto& o,
                      const auto* mask, const vk::buffer<u8>* blk) {
                    if (mask)
                      kernels::record_prefill(rec, c.problem, q, k, v, o, *mask, blk, path);
                    else
                      kernels::record_prefill(rec, c.problem, q, k, v, o, path);
                  });
}

// A case's inputs (K and V poisoned with NaN past key_len), biases, the
// reference output and max |v|.
template <class T>
struct case_data {
  std::vector<T> q, k, v;
  std::vector<float> biases;
  std::vector<double> want;
  double max_v = 0;
};

template <class T>
case_data<T> make_case(const check_case& c, std::uint32_t d) {
  std::mt19937_64 rng(d * 1000 + c.name.size() * 7 + (std::is_same_v<T, f16> ? 0 : 1));
  const prefill_problem& p = c.problem;
  const kernels::prefill_sizes sizes = kernels::prefill_sizes_of(p);
  std::uniform_real_distribution<float> unit(-1, 1);
  case_data<T> out;
  std::vector<T>&q = out.q, &k = out.k, &v = out.v;
  q.resize(sizes.q);
  k.resize(sizes.k);
  v.resize(sizes.v);
  for (T& x : q) x = round_to<T>(unit(rng));
  for (T& x : k) x = round_to<T>(unit(rng));
  for (T& x : v) x = round_to<T>(unit(rng));
  if (c.near_limits) {
    // V within f16's range but close to its limit; some Q and K below
    // f16's normal range (2^-14), where the conversion loses bits.
    std::uniform_real_distribution<float> big(30000, 65000);
    for (T& x : v) x = round_to<T>(unit(rng) < 0 ? -big(rng) : big(rng));
    for (std::size_t i = 0; i < q.size(); i += 5) q[i] = round_to<T>(3e-6f * unit(rng));
    for (std::size_t i = 0; i < k.size(); i += 7) k[i] = round_to<T>(3e-6f * unit(rng));
  }
  const kernels::PrefillParams s = kernels::prefill_params(p);
  for (std::uint32_t b = 0; b < p.batch; ++b)
    for (std::uint32_t h = 0; h < p.num_kv_heads; ++h)
      for (std::uint32_t j = p.key_len; j < p.capacity(); ++j)
        for (std::uint32_t e = 0; e < p.head_dim; ++e) {
          const std::size_t at = b * s.k_strides[0] + h * s.k_strides[1] + j * s.k_strides[2] + e;
          k[at] = v[at] = nan_of<T>();
        }
  out.biases = make_biases<T>(c, rng);
  out.want = reference::prefill(p, reference::widen<T>(q), reference::widen<T>(k),
                                reference::widen<T>(v), out.biases);
  for (std::uint32_t b = 0; b < p.batch; ++b)
    for (std::uint32_t h = 0; h < p.num_kv_heads; ++h)
      for (std::uint32_t j = 0; j < p.key_len; ++j)
        for (std::uint32_t e = 0; e < p.head_dim; ++e)
          out.max_v = std::max<double>(
              out.max_v, std::abs(to_float(
                             v[b * s.k_strides[0] + h * s.k_strides[1] + j * s.k_strides[2] + e])));
  return out;
}

template <class T>
int check_type(vk::context& ctx, std::uint32_t d) {
  int failures = 0;
  const char* type = std::is_same_v<T, f16> ? "f16" : "bf16";
  for (const check_case& c : cases_for(d, std::is_same_v<T, bf16>)) {
    const auto [q, k, v, biases, want, max_v] = make_case<T>(c, d);
    std::string label = std::string(type) + " d" + std::to_string(d) + " " + c.name;
    try {
      const outcome coop =
          compare(run(ctx, c, q, k, v, biases, prefill_path::coopmat), want, max_v);
      const outcome portable =
          compare(run(ctx, c, q, k, v, biases, prefill_path::portable), want, max_v);
      std::printf("%s %-52s max error %.3g (tolerance there %.3g), portable %.3g%s\n",
                  coop.pass ? "PASS" : "FAIL", label.c_str(), coop.max_error, coop.tolerance_there,
                  portable.max_error, portable.pass ? "" : " (portable FAILS too)");
      failures += coop.pass ? 0 : 1;
    } catch (const std::exception& e) {
      std::printf("FAIL %-52s %s\n", label.c_str(), e.what());
      ++failures;
    }
    std::fflush(stdout);
  }
  return failures;
}

int check_all(vk::context& ctx) {
  int failures = 0;
  for (std::uint32_t d : {64u, 128u, 256u, 512u}) {
    failures += check_type<f16>(ctx, d);
    failures += check_type<bf16>(ctx, d);
  }
  std::printf("%s: %d case(s) failed\n", failures == 0 ? "ALL PASS" : "FAILURES", failures);
  return failures;
}

struct bench_shape {
  std::uint32_t batch, heads, kv_heads, length, dim;
  bool causal, bf16_io;
};

// The shapes of issue 7.
const bench_shape issue_shapes[] = {
    {1, 16, 8, 2048, 256, true, true},   {1, 16, 8, 8192, 256, true, true},
    {1, 16, 8, 8192, 256, false, false}, {1, 16, 2, 8192, 512, true, true},
    {32, 12, 12, 512, 64, false, true},  {4, 32, 8, 8192, 128, true, true}};

// A benchmark shape's problem, random inputs on the device and FLOPs.
template <class T>
struct bench_inputs {
  prefill_problem p;
  vk::buffer<T> q, k, v, o;
  double flops;

  bench_inputs(vk::context& ctx, const bench_shape& b)
      : p(problem_of(b)),
        q(ctx, kernels::prefill_sizes_of(p).q),
        k(ctx, kernels::prefill_sizes_of(p).k),
        v(ctx, kernels::prefill_sizes_of(p).v),
        o(ctx, kernels::prefill_sizes_of(p).o),
        flops(4.0 * b.batch * b.heads * double(b.length) * b.length * b.dim *
              (b.causal ? 0.5 : 1.0)) {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<float> unit(-1, 1);
    std::vector<T> host(std::max(q.size(), k.size()));
    for (T& x : host) x = round_to<T>(unit(rng));
    q.upload(std::span<const T>(host.data(), q.size()));
    k.upload(std::span<const T>(host.data(), k.size()));
    v.upload(std::span<const T>(host.data(), v.size()));
  }
  static prefill_problem problem_of(const bench_shape& b) {
    prefill_problem p = shape(b.dim, b.batch, b.heads, b.kv_heads, b.length, b.length);
    p.causal = b.causal;
    return p;
  }
};

// A second of warm-up: the H100 idles at 345 MHz between the checks (CPU
// work) and takes longer than 100 ms of GPU work to reach its 1980 MHz, so
// shorter warm-ups timed some variants 3-4x slow (nvidia-smi's clock log).
const bench::repetitions bench_repetitions{3, 50, 1500, 1000};
// The sweep's: fewer samples per variant, to time many in one device call.
const bench::repetitions sweep_repetitions{3, 30, 500, 1000};

template <class T>
void bench_one(vk::context& ctx, const bench_shape& b, double coopmat_rate) {
  bench_inputs<T> in(ctx, b);
  const prefill_problem& p = in.p;
  auto &q = in.q, &k = in.k, &v = in.v, &o = in.o;
  const double flops = in.flops;
  const bench::repetitions& how = bench_repetitions;
  double coop_ms = 0, portable_ms = 0;
  for (prefill_path path : {prefill_path::coopmat, prefill_path::portable}) {
    const bench::timing t = bench::time_gpu(
        ctx, [&](vk::recorder& rec, int) { kernels::record_prefill(rec, p, q, k, v, o, path); },
        how);
    (path == prefill_path::coopmat ? coop_ms : portable_ms) = t.median_us / 1e3;
  }
  std::printf(
      "B=%-2u H=%-2u Hkv=%-2u L=%-5u D=%-3u %-10s %-4s  coopmat %8.3f ms %6.1f TFLOP/s (%4.1f%% of "
      "the coopmat rate)   portable %8.3f ms %6.1f TFLOP/s\n",
      b.batch, b.heads, b.kv_heads, b.length, b.dim, b.causal ? "causal" : "non-causal",
      b.bf16_io ? "bf16" : "f16", coop_ms, flops / (coop_ms * 1e9),
      100 * flops / (coop_ms * 1e9) / coopmat_rate, portable_ms, flops / (portable_ms * 1e9));
  std::fflush(stdout);
}

// Tile shapes besides the default that --sweep times, each within the
// NVIDIA target's 48 KiB ({split, keys, subgroups, prefetch, row_blocks,
// one_kv_buffer, register_softmax}): the runners-up of the earlier sweeps
// (docs/perf/prefill_coopmat.md) and the first version's tiles. Instantiated
// here rather than registered, so CI compiles only the defaults. (At D = 64
// the tile classes' 64 keys leave no room for more subgroups or row blocks.)
template <int D>
constexpr auto sweep_tiles = [] {
  using tiles = kernels::coopmat_prefill_tiles;
  if constexpr (D == 512)
    return std::array{tiles{4, 16, 8, true, 1, true}, tiles{4, 16, 4}};
  else if constexpr (D == 256)
    return std::array{tiles{1, 16, 8, true, 1, false, true}, tiles{2, 16, 8, true},
                      tiles{2, 32, 4}};
  else if constexpr (D == 128)
    return std::array{tiles{1, 32, 8, true}, tiles{1, 64, 4, true, 1, true, true},
                      tiles{1, 32, 4, true, 1, false, true}, tiles{1, 32, 4}};
  else
    return std::array{tiles{1, 64, 4, true}, tiles{1, 64, 4}};
}();

template <int D, class T, std::size_t... I>
variant_list<kernels::prefill_coopmat<D, T, T, sweep_tiles<D>[I]>...> sweep_variants(
    std::index_sequence<I...>);

// The default tiles first, then sweep_tiles<D>, with additive masks.
template <int D, class T>
using sweep_variants_d = join_variants_t<variant_list<kernels::prefill_coopmat<D, T>>,
                                         decltype(sweep_variants<D, T>(
                                             std::make_index_sequence<sweep_tiles<D>.size()>{}))>;

// --sweep: every tile shape of the shape's head dim and type, each checked
// against the reference on three small cases before it is timed.
template <class T>
int sweep_one(vk::context& ctx, const bench_shape& b) {
  int failures = 0;
  bench_inputs<T> in(ctx, b);
  kernels::with_head_dim<64, 128, 256, 512>("prefill", b.dim, [&](auto dim) {
    constexpr int D = decltype(dim)::value;
    using list = sweep_variants_d<D, T>;
    list::for_each([&]<class K>(std::type_identity<K>) {
      const auto record = [](vk::recorder& rec, const prefill_problem& p, const auto& q,
                             const auto& k, const auto& v, const auto& o, const auto* mask,
                             const vk::buffer<u8>* blk) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(*mask)>, vk::buffer<T>>)
          kernels::record_prefill_coopmat_variant<K::head_dim, T, T, K::tiles>(rec, p, q, k, v, o,
                                                                               mask, blk);
        else
          throw error("prefill_check", "the sweep's variants take additive masks only");
      };
      bool pass = true;
      double worst = 0;
      std::string first_failure;
      try {
        for (const check_case& c : cases_for(K::head_dim, false)) {
          if (c.name != "causal offset 41" && c.name != "additive rank2 + blk" &&
              c.name != "ragged gqa2 head_major")
            continue;
          const case_data<T> data = make_case<T>(c, K::head_dim);
          const outcome result =
              compare(run_with(ctx, c, data.q, data.k, data.v, data.biases,
                               [&](vk::recorder& rec, const auto& q, const auto& k, const auto& v,
                                   const auto& o, const auto* mask, const vk::buffer<u8>* blk) {
                                 record(rec, c.problem, q, k, v, o, mask, blk);
                               }),
                      data.want, data.max_v);
          worst = std::max(worst, result.max_error);
          if (!result.pass && pass) first_failure = " (fails on " + c.name + ")";
          pass = pass && result.pass;
        }
      } catch (const std::exception& e) {
        pass = false;
        first_failure = std::string(" (") + e.what() + ")";
      }
      const char* type = std::is_same_v<T, f16> ? "f16" : "bf16";
      const std::string shape_text =
          "B=" + std::to_string(b.batch) + " H=" + std::to_string(b.heads) +
          " Hkv=" + std::to_string(b.kv_heads) + " L=" + std::to_string(b.length) +
          " D=" + std::to_string(b.dim) + (b.causal ? " causal " : " non-causal ") + type;
      if (!pass) {
        std::printf("SWEEP FAIL %-42s %-46s check max error %.3g%s, not timed\n",
                    shape_text.c_str(), std::string(K::name).c_str(), worst, first_failure.c_str());
        ++failures;
        std::fflush(stdout);
        return;
      }
      const bench::timing t = bench::time_gpu(
          ctx,
          [&](vk::recorder& rec, int) {
            record(rec, in.p, in.q, in.k, in.v, in.o, static_cast<const vk::buffer<T>*>(nullptr),
                   nullptr);
          },
          sweep_repetitions);
      const double ms = t.median_us / 1e3;
      std::printf(
          "SWEEP PASS %-42s %-56s split %u keys %2u subgroups %u prefetch %u row blocks %u kv "
          "buffers %u: %8.3f ms %6.1f TFLOP/s (check max error %.3g)\n",
          shape_text.c_str(), std::string(K::name).c_str(), K::tiles.split, K::tiles.keys,
          K::tiles.subgroups, K::tiles.prefetch ? 1u : 0u, K::tiles.row_blocks,
          K::tiles.one_kv_buffer ? 1u : 2u, ms, in.flops / (ms * 1e9), worst);
      std::fflush(stdout);
    });
  });
  return failures;
}

int sweep_all(vk::context& ctx) {
  int failures = 0;
  for (const bench_shape& b : issue_shapes) {
    if (b.length < 8192 && b.batch == 1) continue;  // L = 2048 varies too much to rank tiles
    failures += b.bf16_io ? sweep_one<bf16>(ctx, b) : sweep_one<f16>(ctx, b);
  }
  std::printf("%s: %d sweep variant(s) failed their check\n",
              failures == 0 ? "SWEEP ALL PASS" : "SWEEP FAILURES", failures);
  return failures;
}

// --ceiling: the GEMM's tile shapes, the stand-alone probe's first.
constexpr std::array gemm_sweep_tiles{
    bench::coopmat_gemm_default_tiles, bench::coopmat_gemm_tiles{128, 256, 32, 2, 4},
    bench::coopmat_gemm_tiles{256, 128, 32, 4, 2}, bench::coopmat_gemm_tiles{128, 128, 32, 4, 2},
    bench::coopmat_gemm_tiles{128, 128, 64, 2, 2}};

// C = A B of random f16 in [-1, 1] against a double GEMM, on a C poisoned
// with NaN. The products are exact in f32; each of the k additions may be
// off by one f32 ulp (tensor cores may truncate), so |error| <= (k + 1)
// 2^-23 sum |a b|.
template <bench::coopmat_gemm_tiles Tiles>
outcome check_gemm(vk::context& ctx) {
  const std::uint32_t m = 2 * Tiles.rows, n = 2 * Tiles.cols, k = 5 * Tiles.depth;
  std::mt19937_64 rng(m + n + k);
  std::uniform_real_distribution<float> unit(-1, 1);
  std::vector<f16> ha(std::size_t{m} * k), hb(std::size_t{k} * n);
  for (f16& x : ha) x = to_f16(unit(rng));
  for (f16& x : hb) x = to_f16(unit(rng));
  vk::buffer<f16> a(ctx, ha.size()), b(ctx, hb.size());
  vk::buffer<float> c(ctx, std::size_t{m} * n);
  a.upload(ha);
  b.upload(hb);
  c.fill(std::numeric_limits<float>::quiet_NaN());
  vk::recorder rec(ctx);
  bench::record_coopmat_gemm<Tiles>(rec, m, n, k, a, b, c);
  rec.submit_and_wait();
  const std::vector<float> got = c.download();
  outcome o;
  double worst_ratio = -1;
  for (std::uint32_t i = 0; i < m; ++i)
    for (std::uint32_t j = 0; j < n; ++j) {
      double want = 0, magnitude = 0;
      for (std::uint32_t l = 0; l < k; ++l) {
        const double product =
            double(to_float(ha[std::size_t{i} * k + l])) * to_float(hb[std::size_t{l} * n + j]);
        want += product;
        magnitude += std::abs(product);
      }
      const double tol = std::ldexp((k + 1) * magnitude, -23);
      const double g = got[std::size_t{i} * n + j];
      const double err = std::isfinite(g) ? std::abs(g - want) : inf;
      if (!(err <= tol)) o.pass = false;
      o.max_error = std::max(o.max_error, err);
      if (err / tol > worst_ratio) {
        worst_ratio = err / tol;
        o.tolerance_there = tol;
      }
    }
  return o;
}

// Each GEMM tile shape checked, then timed at M = N = K = 8192; returns the
// fastest rate in TFLOP/s (0 if none passed).
double ceiling_all(vk::context& ctx) {
  if (!bench::coopmat_gemm_supported(ctx.device())) {
    std::printf("GEMM FAIL: this device cannot run the cooperative-matrix GEMM\n");
    return 0;
  }
  constexpr std::uint32_t size = 8192;
  vk::buffer<f16> a(ctx, std::size_t{size} * size), b(ctx, std::size_t{size} * size);
  vk::buffer<float> c(ctx, std::size_t{size} * size);
  {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> unit(-1, 1);
    std::vector<f16> host(a.size());
    for (f16& x : host) x = to_f16(unit(rng));
    a.upload(host);
    b.upload(host);
  }
  double best = 0;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          constexpr bench::coopmat_gemm_tiles tiles = gemm_sweep_tiles[I];
          const std::string name(bench::coopmat_gemm<tiles>::name);
          try {
            const outcome check = check_gemm<tiles>(ctx);
            if (!check.pass) {
              std::printf("GEMM FAIL %-44s check max error %.3g (tolerance there %.3g)\n",
                          name.c_str(), check.max_error, check.tolerance_there);
              return;
            }
            const bench::timing t = bench::time_gpu(
                ctx,
                [&](vk::recorder& rec, int) {
                  bench::record_coopmat_gemm<tiles>(rec, size, size, size, a, b, c);
                },
                bench::repetitions{3, 20, 300, 1000});
            const double tflops = 2.0 * size * size * double(size) / (t.median_us * 1e6);
            best = std::max(best, tflops);
            std::printf(
                "GEMM PASS %-44s M=N=K=%u tile %ux%u, K step %u, %ux%u subgroups: %8.3f ms %6.1f "
                "TFLOP/s (check max error %.3g, tolerance there %.3g)\n",
                name.c_str(), size, tiles.rows, tiles.cols, tiles.depth, tiles.grid_rows,
                tiles.grid_cols, t.median_us / 1e3, tflops, check.max_error, check.tolerance_there);
          } catch (const std::exception& e) {
            std::printf("GEMM FAIL %-44s %s\n", name.c_str(), e.what());
          }
          std::fflush(stdout);
        }(),
        ...);
  }
  (std::make_index_sequence<gemm_sweep_tiles.size()>{});
  std::printf("GEMM ceiling (fastest passing tile shape): %.1f TFLOP/s\n", best);
  return best;
}

void bench_all(vk::context& ctx) {
  const bench::matrix_rates rates = bench::measure_matrix(ctx);
  std::printf(
      "%s: cooperative-matrix rate %.1f TFLOP/s (bench::coopmat_rate, f16 x f16 -> f32 from "
      "registers, no memory traffic), f32 FMA rate %.1f TFLOP/s\n",
      ctx.device().name.c_str(), rates.coopmat_tflops, rates.fma_tflops);
  std::printf(
      "TFLOP/s = 4 * B * H * L * L * D / time, halved for causal; compare with PyTorch "
      "SDPA at the same shapes (bench/peers/sdpa.py)\n");
  for (const bench_shape& b : issue_shapes) {
    try {
      if (b.bf16_io)
        bench_one<bf16>(ctx, b, rates.coopmat_tflops);
      else
        bench_one<f16>(ctx, b, rates.coopmat_tflops);
    } catch (const std::exception& e) {
      std::printf("B=%u H=%u L=%u D=%u: FAILED: %s\n", b.batch, b.heads, b.length, b.dim, e.what());
    }
  }
}

// --compile: what --sweep and --ceiling run, compiled for the NVIDIA target.
int compile_all() {
  int failures = 0;
  const auto compile = [&](const variant_info& v) {
    try {
      vk::compile_variant(v, targets::nvidia);
      std::printf("COMPILED %s\n", std::string(v.name).c_str());
    } catch (const std::exception& e) {
      std::printf("COMPILE FAIL %s: %s\n", std::string(v.name).c_str(), e.what());
      ++failures;
    }
    std::fflush(stdout);
  };
  const auto each = [&]<class List>(std::type_identity<List>) {
    List::for_each([&]<class K>(std::type_identity<K>) { compile(info<K>()); });
  };
  each(std::type_identity<sweep_variants_d<64, bf16>>{});
  each(std::type_identity<sweep_variants_d<128, bf16>>{});
  each(std::type_identity<sweep_variants_d<256, bf16>>{});
  each(std::type_identity<sweep_variants_d<256, f16>>{});
  each(std::type_identity<sweep_variants_d<512, bf16>>{});
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (compile(info<bench::coopmat_gemm<gemm_sweep_tiles[I]>>()), ...);
  }
  (std::make_index_sequence<gemm_sweep_tiles.size()>{});
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  bool check = argc == 1, bench = argc == 1, ceiling = argc == 1, sweep = argc == 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--compile") == 0) return compile_all() == 0 ? 0 : 1;
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
    } else if (std::strcmp(argv[i], "--bench") == 0) {
      bench = ceiling = true;
    } else if (std::strcmp(argv[i], "--ceiling") == 0) {
      ceiling = true;
    } else if (std::strcmp(argv[i], "--sweep") == 0) {
      sweep = true;
    } else {
      std::fprintf(stderr,
                   "usage: prefill_check [--check] [--bench] [--ceiling] [--sweep] | --compile\n");
      return 2;
    }
  }
  try {
    vk::context ctx;
    std::printf("device: %s\n", ctx.device().name.c_str());
    if (!kernels::prefill_coopmat_supported(ctx.target(), 64)) {
      std::printf(
          "FAIL: this device has no cooperative-matrix prefill (needs VK_NV_cooperative_"
          "matrix with 16x16x16 f16 x f16 -> f32 and 32-lane subgroups)\n");
      return 1;
    }
    int failures = 0;
    if (check) failures = check_all(ctx);
    if (bench) bench_all(ctx);
    if (ceiling && ceiling_all(ctx) == 0) ++failures;
    if (sweep) failures += sweep_all(ctx);
    return failures == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
