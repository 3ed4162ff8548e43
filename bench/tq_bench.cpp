// TurboQuant decode on the default device: every variant the sweep compiles
// in (staging of the decoded rows, heads per subgroup) is first checked
// against the double-precision reference on a small ragged case (PASS or
// FAIL), then timed at the shapes for each cache format, next to
// decode_f16 at the same shapes. Method as include/tessel/bench/timing.hpp:
// input sets rotated over 3x the L2, warm-up, median of GPU timestamps
// around each call (decode kernel + reduce). One JSON line per measurement
// on stdout, a table on stderr.
//
//   tq_bench             the shipped variants with the host op's own plan
//   tq_bench --sweep     also every compiled variant and nsg, with NWG = 64 and 128
//   tq_bench --quick     small shapes, few repetitions (runs on lavapipe)
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "tessel/bench/json.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/tq_decode.hpp"
#include "tessel/reference/tq_decode.hpp"

namespace {

using namespace tessel;
using kernels::decode_tiling;
using kernels::tq_decode_args;
using kernels::tq_decode_op;
using kernels::tq_staging;

// The buffers of one call; those a format does not read hold one element.
struct input_set {
  vk::buffer<float> q, out, scratch;
  vk::buffer<std::uint32_t> key_codes, value_codes;
  vk::buffer<float> key_norms, value_norms;
  vk::buffer<f16> keys, values;
};

using record_fn = void (*)(vk::recorder&, const input_set&, const tq_decode_args&);

// The kernel for the planned tiling {heads, 1, nsg} with rows staged as S
// in tiles of at most MaxTile positions.
template <tq_decode_op Op, int D, tq_staging S, std::uint32_t MaxTile>
struct sweep_kernel {
  template <decode_tiling T>
  using kernel = kernels::tq_decode_kernel<D, T, Op, S, MaxTile>;
};

template <tq_decode_op Op, int D, tq_staging S, std::uint32_t MaxTile>
void record_variant(vk::recorder& rec, const input_set& s, const tq_decode_args& a) {
  const bool hybrid = Op == tq_decode_op::hybrid;
  kernels::detail::record_tq_decode_with<Op, D, sweep_kernel<Op, D, S, MaxTile>::template kernel>(
      rec, s.q, {&s.key_codes, &s.key_norms}, hybrid ? &s.keys : nullptr,
      {&s.value_codes, &s.value_norms}, a.values_f16 ? &s.values : nullptr, s.out, &s.scratch, a);
}

// The host op's own plan and variants.
template <tq_decode_op Op>
void record_default(vk::recorder& rec, const input_set& s, const tq_decode_args& a) {
  const kernels::tq_cache_buffers k{&s.key_codes, &s.key_norms}, v{&s.value_codes, &s.value_norms};
  if constexpr (Op == tq_decode_op::nibble)
    kernels::record_tq_decode(rec, s.q, k, v, s.out, &s.scratch, a);
  else if constexpr (Op == tq_decode_op::byte)
    kernels::record_tq_hb_decode(rec, s.q, k, v, s.out, &s.scratch, a);
  else
    kernels::record_tq_hybrid_decode(rec, s.q, s.keys,
                                     a.values_f16 ? kernels::tq_cache_buffers{} : v,
                                     a.values_f16 ? &s.values : nullptr, s.out, &s.scratch, a);
}

record_fn default_fn(tq_decode_op op) {
  return op == tq_decode_op::nibble ? &record_default<tq_decode_op::nibble>
         : op == tq_decode_op::byte ? &record_default<tq_decode_op::byte>
                                    : &record_default<tq_decode_op::hybrid>;
}

struct variant {
  tq_decode_op op;
  std::uint32_t dim;
  tq_staging staging;
  std::uint32_t max_tile;
  record_fn fn;
};

// The stagings and tile caps the sweep compiles in: the shipped one (f16,
// 16), f32 rows (the reference's exact values) and the engine's largest
// tile (docs/perf/tq_decode.md's sweep also had tiles of 32 for both
// stagings).
template <tq_decode_op Op, int D>
void add_variants(std::vector<variant>& list) {
  list.push_back({Op, D, tq_staging::f16, 16, &record_variant<Op, D, tq_staging::f16, 16>});
  list.push_back({Op, D, tq_staging::f32, 16, &record_variant<Op, D, tq_staging::f32, 16>});
  list.push_back({Op, D, tq_staging::f16, 64, &record_variant<Op, D, tq_staging::f16, 64>});
}

std::vector<variant> all_variants() {
  std::vector<variant> list;
  add_variants<tq_decode_op::nibble, 256>(list);
  add_variants<tq_decode_op::nibble, 512>(list);
  add_variants<tq_decode_op::byte, 256>(list);
  add_variants<tq_decode_op::byte, 512>(list);
  add_variants<tq_decode_op::hybrid, 256>(list);
  add_variants<tq_decode_op::hybrid, 512>(list);
  return list;
}

// A cache format: the op and the code width (16: the hybrid's f16 V).
struct format {
  tq_decode_op op;
  std::uint32_t bits;
  std::string label() const {
    return std::string(kernels::op_name(op)) + " " +
           (bits == 16 ? std::string("f16 V") : std::to_string(bits) + "-bit");
  }
};

struct shape {
  std::uint32_t heads, kv_heads, dim, length;
};

tq_decode_args make_args(const format& f, const shape& s) {
  tq_decode_args a;
  a.num_heads = s.heads;
  a.num_kv_heads = s.kv_heads;
  a.head_dim = s.dim;
  a.kv_seq_len = s.length;
  a.kv_capacity = s.length;
  a.bits = f.bits == 16 ? 8 : f.bits;
  a.values_f16 = f.bits == 16;
  return a;
}

// Random contents: code words (the kernels and the reference mask them to
// the width), norms of rows like those of the f16 rows in [-1, 1); host
// copies for the reference.
struct host_inputs {
  std::vector<float> q;
  std::vector<std::uint32_t> key_codes, value_codes;
  std::vector<float> key_norms, value_norms;
  std::vector<f16> keys, values;
};

host_inputs random_inputs(const tq_decode_args& a, tq_decode_op op, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const kernels::tq_cache_format f = kernels::tq_decode_cache_format(a);
  const bool quantized_keys = kernels::tq_quantized_keys(op);
  const bool quantized_values = kernels::tq_quantized_values(op, a);
  const std::uint64_t f16_cache = std::uint64_t{f.num_kv_heads} * a.kv_capacity * a.head_dim;
  host_inputs h;
  h.q.resize(std::uint64_t{a.batch} * a.num_heads * a.head_dim);
  for (float& x : h.q) x = uniform(rng);
  const auto words = [&](bool used) {
    std::vector<std::uint32_t> v(used ? kernels::tq_code_words(f) : 1);
    for (auto& w : v) w = static_cast<std::uint32_t>(rng());
    return v;
  };
  // Norms of rows of values in [-1, 1): N near sqrt(D / 3), or the block
  // RMS near 0.58 at D = 512.
  const float typical = a.head_dim == 512 ? 1.0f : std::sqrt(static_cast<float>(a.head_dim));
  const auto norms = [&](bool used) {
    std::vector<float> v(used ? kernels::tq_norm_count(f) : 1);
    for (float& x : v) x = typical * (0.58f + 0.2f * uniform(rng));
    return v;
  };
  const auto rows = [&](bool used) {
    std::vector<f16> v(used ? f16_cache : 1);
    for (f16& x : v) x = to_f16(uniform(rng));
    return v;
  };
  h.key_codes = words(quantized_keys);
  h.key_norms = norms(quantized_keys);
  h.value_codes = words(quantized_values);
  h.value_norms = norms(quantized_values);
  h.keys = rows(!quantized_keys);
  h.values = rows(!quantized_values);
  return h;
}

input_set upload(vk::context& ctx, const host_inputs& h, std::uint64_t scratch_floats) {
  auto buffer = [&](const auto& host) {
    using T = typename std::decay_t<decltype(host)>::value_type;
    vk::buffer<T> b(ctx, host.size());
    b.upload(host);
    return b;
  };
  input_set s{buffer(h.q),
              vk::buffer<float>(ctx, h.q.size()),
              vk::buffer<float>(ctx, std::max<std::uint64_t>(scratch_floats, 1)),
              buffer(h.key_codes),
              buffer(h.value_codes),
              buffer(h.key_norms),
              buffer(h.value_norms),
              buffer(h.keys),
              buffer(h.values)};
  return s;
}

// What a cache stands for, in double.
std::vector<double> cache_values(const tq_decode_args& a, bool quantized,
                                 const std::vector<std::uint32_t>& codes,
                                 const std::vector<float>& norms, const std::vector<f16>& rows) {
  if (!quantized) return reference::widen_to_double(std::span<const f16>(rows));
  reference::tq_cache cache(kernels::tq_decode_cache_format(a));
  cache.codes = codes;
  cache.norms.assign(norms.begin(), norms.end());
  return reference::tq_dequantize_cache(cache, a.scale_factor_d512);
}

struct config {
  const variant* v = nullptr;  // null: the host op's own plan
  std::uint32_t heads_per_group = 0, nsg = 0, nwg = 0;
};

std::string describe(const config& c) {
  if (!c.v) return "default";
  return std::string(c.v->staging == tq_staging::f16 ? "f16" : "f32") + " t" +
         std::to_string(c.v->max_tile) + " h" + std::to_string(c.heads_per_group) + " p" +
         std::to_string(c.nsg);
}

// The largest |got - want| / (2e-6 + 2e-5 |want|): the kernel tests'
// tolerance for f32 staging is <= 1.
double tolerance_ratio(const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double r = std::fabs(got[i] - want[i]) / (2e-6 + 2e-5 * std::fabs(want[i]));
    worst = std::isnan(r) ? INFINITY : std::max(worst, r);
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  bool sweep = false, quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--sweep") == 0) {
      sweep = true;
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      std::cerr << "usage: tq_bench [--sweep] [--quick]\n";
      return 2;
    }
  }
  try {
    vk::context ctx;
    const std::vector<variant> variants = all_variants();
    const std::vector<format> formats{{tq_decode_op::nibble, 4},
                                      {tq_decode_op::byte, 8},
                                      {tq_decode_op::byte, 5},
                                      {tq_decode_op::hybrid, 8},
                                      {tq_decode_op::hybrid, 16}};
    // The configurations of a shape: the default plan, and in a sweep every
    // variant of its head dim with every head count and nsg that fit.
    const auto configs_for = [&](const format& f, const shape& s) {
      // The default plan twice: the first measurement after new buffers
      // are allocated can be slow.
      std::vector<config> list{{}, {}};
      if (!sweep) return list;
      const std::uint32_t group = s.heads / s.kv_heads;
      for (const variant& v : variants) {
        // The staging is that of quantized rows only; 5 bits times as 8.
        if (v.op != f.op || v.dim != s.dim || f.bits == 5 ||
            (f.bits == 16 && v.staging != tq_staging::f32))
          continue;
        for (std::uint32_t heads : {1u, 2u, 4u, 8u})
          for (std::uint32_t nsg : {1u, 2u, 4u})
            if (group % heads == 0 && heads * 2 >= group && heads * nsg <= 16 && heads > 1)
              list.push_back({&v, heads, nsg, 0});
      }
      return list;
    };

    // Correctness: each configuration on a small ragged case, split into 3
    // slices.
    int failures = 0;
    const std::vector<shape> check_shapes{{16, 8, 256, 1000}, {16, 2, 512, 777}};
    std::fprintf(stderr, "%-28s %-16s %8s %s\n", "check", "variant", "error", "");
    for (const format& f : formats)
      for (const shape& s : check_shapes) {
        tq_decode_args a = make_args(f, s);
        a.kv_capacity = s.length + 3;
        a.nwg = 3;
        const host_inputs h = random_inputs(a, f.op, 7);
        const std::vector<double> want = reference::tq_decode(
            f.op, h.q,
            cache_values(a, kernels::tq_quantized_keys(f.op), h.key_codes, h.key_norms, h.keys),
            cache_values(a, kernels::tq_quantized_values(f.op, a), h.value_codes, h.value_norms,
                         h.values),
            a);
        input_set set =
            upload(ctx, h, kernels::plan_tq_decode(ctx.device(), f.op, a).scratch_floats);
        const std::vector<config> configs = configs_for(f, s);
        for (std::size_t ci = 1; ci < configs.size(); ++ci) {
          const config& c = configs[ci];
          tq_decode_args run = a;
          run.heads_per_group = c.heads_per_group;
          run.nsg = c.nsg;
          set.out.fill(std::nanf(""));
          vk::recorder rec(ctx);
          (c.v ? c.v->fn : default_fn(f.op))(rec, set, run);
          rec.submit_and_wait();
          const double ratio = tolerance_ratio(set.out.download(), want);
          // f16 staging rounds every decoded value (relative 2^-11): its
          // error is reported (the kernel tests hold it to its derived
          // bound), the f32 staging must meet the tests' f32 tolerance.
          const tq_staging staging = c.v ? c.v->staging : kernels::tq_default_staging;
          const bool exact = staging == tq_staging::f32 || f.bits == 16;
          const bool pass = exact ? ratio <= 1 : std::isfinite(ratio);
          failures += pass ? 0 : 1;
          const std::string name = f.label() + " D" + std::to_string(s.dim);
          std::fprintf(stderr, "%-28s %-16s %8.3g %s\n", name.c_str(), describe(c).c_str(), ratio,
                       pass ? "PASS" : "FAIL");
          std::cout << bench::json_line()
                           .add("kind", "check")
                           .add("op", std::string(kernels::op_name(f.op)))
                           .add("bits", f.bits)
                           .add("dim", s.dim)
                           .add("variant", describe(c))
                           .add("tolerance_ratio", ratio)
                           .add("pass", pass ? 1.0 : 0.0)
                           .str()
                    << std::endl;
        }
      }

    const bench::copy_rates copy = bench::measure_copy(ctx, quick ? 16ull << 20 : 1ull << 30);
    const double copy_gbs = copy.best();
    std::cout << bench::json_line()
                     .add("kind", "copy")
                     .add("device", ctx.device().name)
                     .add("gbs", copy_gbs)
                     .str()
              << std::endl;
    std::fprintf(stderr, "%s: copy %.0f GB/s\n", ctx.device().name.c_str(), copy_gbs);
    std::fprintf(stderr, "%-34s %-16s %4s %9s %9s %9s %8s %6s\n", "shape", "variant", "nwg",
                 "median us", "p10", "p90", "MB", "copy%");
    const bench::repetitions how =
        quick ? bench::repetitions{3, 3, 0, 1} : bench::repetitions{20, 200, 100, 100};
    const std::vector<shape> shapes =
        quick ? std::vector<shape>{{8, 2, 256, 300}, {8, 2, 512, 300}}
              : std::vector<shape>{{16, 8, 256, 32768}, {16, 2, 512, 32768}};
    const auto report = [&](const std::string& kind, const shape& s, const std::string& what,
                            std::uint32_t nwg, double bytes, const bench::timing& t) {
      const double gbs = bytes / (t.median_us * 1e3);
      std::cout << bench::json_line()
                       .add("kind", kind)
                       .add("heads", s.heads)
                       .add("kv_heads", s.kv_heads)
                       .add("dim", s.dim)
                       .add("length", s.length)
                       .add("variant", what)
                       .add("nwg", nwg)
                       .add("bytes", bytes)
                       .add("median_us", t.median_us)
                       .add("p10_us", t.p10_us)
                       .add("p90_us", t.p90_us)
                       .add("copy_fraction", gbs / copy_gbs)
                       .str()
                << std::endl;
      const std::string name = kind + " H" + std::to_string(s.heads) + " Hkv" +
                               std::to_string(s.kv_heads) + " D" + std::to_string(s.dim);
      std::fprintf(stderr, "%-34s %-16s %4u %9.1f %9.1f %9.1f %8.1f %5.1f%%\n", name.c_str(),
                   what.c_str(), nwg, t.median_us, t.p10_us, t.p90_us, bytes / 1e6,
                   100 * gbs / copy_gbs);
    };
    for (const shape& s : shapes) {
      // decode_f16 at the same shape, the host op's plan.
      {
        kernels::decode_args a;
        a.num_heads = s.heads;
        a.num_kv_heads = s.kv_heads;
        a.head_dim = s.dim;
        a.kv_seq_len = a.kv_capacity = s.length;
        const std::uint64_t cache = std::uint64_t{s.kv_heads} * s.length * s.dim;
        const double bytes = 2.0 * cache * 2 + 2.0 * s.heads * s.dim * 4;
        const int sets = bench::rotation_sets(static_cast<std::uint64_t>(bytes));
        const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), a);
        std::vector<f16> rows(cache, to_f16(0.5f));
        std::vector<float> q(std::uint64_t{s.heads} * s.dim, 0.25f);
        std::vector<input_set> inputs;
        for (int i = 0; i < sets; ++i) {
          host_inputs h{q, {0}, {0}, {1.0f}, {1.0f}, rows, rows};
          inputs.push_back(upload(ctx, h, plan.scratch_floats));
        }
        const auto record = [&](vk::recorder& rec, int rep) {
          const input_set& in = inputs[rep % sets];
          kernels::record_decode_f16(rec, in.q, in.keys, in.values, in.out, &in.scratch, a);
        };
        bench::time_gpu(ctx, record, how);  // the first measurement after allocation can be slow
        const bench::timing t = bench::time_gpu(ctx, record, how);
        report("decode_f16", s, "default", plan.nwg, bytes, t);
      }
      for (const format& f : formats) {
        const tq_decode_args a = make_args(f, s);
        const double bytes =
            double(kernels::tq_decode_position_bytes(f.op, a)) * s.kv_heads * s.length +
            2.0 * s.heads * s.dim * 4;
        const int sets = bench::rotation_sets(static_cast<std::uint64_t>(bytes));
        const std::uint64_t scratch =
            kernels::decode_partials_size(std::uint64_t{s.heads}, s.dim, kernels::max_decode_nwg);
        std::vector<input_set> inputs;
        for (int i = 0; i < sets; ++i)
          inputs.push_back(upload(ctx, random_inputs(a, f.op, 100 + i), scratch));
        std::vector<config> configs;
        for (const config& c : configs_for(f, s))
          for (std::uint32_t nwg :
               sweep&& c.v ? std::vector<std::uint32_t>{64, 128} : std::vector<std::uint32_t>{0})
            configs.push_back({c.v, c.heads_per_group, c.nsg, nwg});
        for (const config& c : configs) {
          tq_decode_args run = a;
          run.heads_per_group = c.heads_per_group;
          run.nsg = c.nsg;
          run.nwg = c.nwg;
          const kernels::decode_plan plan = kernels::plan_tq_decode(ctx.device(), f.op, run);
          const record_fn fn = c.v ? c.v->fn : default_fn(f.op);
          const bench::timing t = bench::time_gpu(
              ctx, [&](vk::recorder& rec, int rep) { fn(rec, inputs[rep % sets], run); }, how);
          report(f.label(), s, describe(c), plan.nwg, bytes, t);
        }
      }
    }
    if (failures) {
      std::cerr << "tq_bench: " << failures << " configurations FAILED the check\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "tq_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
