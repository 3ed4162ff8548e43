// Decode attention over an f16 KV cache on the default device: GPU time per
// call at the shapes of docs/perf/decode_f16.md, bytes moved, and the
// fraction of the measured copy bandwidth reached. One JSON line per
// measurement on stdout, a table on stderr.
//
//   decode_bench            the shapes with the host op's own plan
//   decode_bench --sweep    also every kernel configuration of sweep_variants()
//                           (the engine's tilings, the matrix kernel's tiles
//                           where the device has cooperative matrices) and
//                           several NWG
//   decode_bench --sweep --kernel coopmat|engine --nwg 8,16,... --dims 128,...
//                           the sweep (and --check) of one kernel's
//                           configurations only, at those NWG (default: the
//                           policy's, 8 to 256) and head dims only
//   decode_bench --sweep --heads 8,4,...
//                           the matrix kernel's configurations also with
//                           those query heads per workgroup (default: the
//                           plan's only); fewer heads give a KV head more
//                           workgroups, each reading its rows
//   decode_bench --check    first checks the host op and every configuration
//                           against the double-precision reference on small
//                           ragged cases (the tests' tolerance); exits 1 on a
//                           mismatch after the timings
//   decode_bench --quick    one small shape, a few repetitions (a smoke test
//                           that runs on lavapipe)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tessel/bench/json.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/reference/decode_f16.hpp"

namespace {

using namespace tessel;
using kernels::decode_f16_args;

struct shape {
  std::uint32_t batch, heads, kv_heads, dim, length;
};

struct input_set {
  vk::buffer<float> q, out, scratch;
  vk::buffer<f16> keys, values;
};

using record_fn = void (*)(vk::recorder&, const input_set&, const decode_f16_args&);
using kernels::decode_coopmat_tiles;
using kernels::decode_tiling;

template <int D, decode_tiling T>
void record(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16_tiled<D, T>(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

template <int D, decode_coopmat_tiles T>
void record_coopmat(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16_coopmat<D, T>(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

std::string label(decode_tiling t) {
  return std::to_string(t.heads) + "/" + std::to_string(t.heads_per_subgroup) + "/" +
         std::to_string(t.position_splits);
}
std::string label(decode_coopmat_tiles t) {
  return "mm " + std::to_string(t.positions) + "/" + std::to_string(t.subgroups) + "/" +
         std::to_string(t.score_split) + (t.alternately ? " alt" : "");
}

// A kernel configuration the sweep tries, compiled in: an engine tiling
// (heads/heads per subgroup/position splits) or a matrix kernel's tiles
// ("mm" positions/subgroups/score split, "alt" when K and V are staged
// alternately; any heads per workgroup).
struct variant {
  std::uint32_t dim;
  std::uint32_t heads;  // query heads per workgroup; 0: the plan's
  std::string label;
  record_fn fn;
  bool coopmat;
};

template <int D, decode_tiling... Ts>
void add_variants(std::vector<variant>& list) {
  (list.push_back({D, static_cast<std::uint32_t>(Ts.heads), label(Ts), &record<D, Ts>, false}),
   ...);
}

template <int D, std::size_t... I>
void add_coopmat_variants(std::vector<variant>& list, std::index_sequence<I...>) {
  constexpr auto sweep = kernels::decode_coopmat_sweep_tiles<D>;
  constexpr decode_coopmat_tiles standard = kernels::decode_coopmat_tiles_for(D);
  list.push_back({D, 0, label(standard), &record_coopmat<D, standard>, true});
  (list.push_back({D, 0, label(sweep[I]), &record_coopmat<D, sweep[I]>, true}), ...);
}
template <int D>
void add_coopmat_variants(std::vector<variant>& list) {
  add_coopmat_variants<D>(
      list, std::make_index_sequence<kernels::decode_coopmat_sweep_tiles<D>.size()>{});
}

// The configurations of the sweep for the head dims of its shapes; the
// matrix kernel's where the device runs it.
std::vector<variant> sweep_variants(const target& device) {
  std::vector<variant> list;
  add_variants<128, decode_tiling{1, 1, 4}, decode_tiling{2, 1, 2}, decode_tiling{2, 1, 4},
               decode_tiling{4, 1, 1}, decode_tiling{4, 1, 2}, decode_tiling{4, 2, 1},
               decode_tiling{4, 2, 2}, decode_tiling{4, 2, 4}, decode_tiling{4, 4, 4}>(list);
  add_variants<256, decode_tiling{1, 1, 4}, decode_tiling{1, 1, 8}, decode_tiling{2, 1, 1},
               decode_tiling{2, 1, 2}, decode_tiling{2, 1, 4}, decode_tiling{2, 2, 2},
               decode_tiling{2, 2, 4}, decode_tiling{2, 2, 8}>(list);
  add_variants<512, decode_tiling{2, 1, 4}, decode_tiling{4, 1, 1}, decode_tiling{4, 1, 2},
               decode_tiling{4, 2, 2}, decode_tiling{4, 2, 4}, decode_tiling{8, 1, 1},
               decode_tiling{8, 1, 2}, decode_tiling{8, 2, 1}, decode_tiling{8, 2, 2}>(list);
  if (kernels::decode_f16_coopmat_supported(device, 128)) {
    add_coopmat_variants<128>(list);
    add_coopmat_variants<256>(list);
    add_coopmat_variants<512>(list);
  }
  return list;
}

void record_default(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

// What the host op runs at `a`.
std::string default_label(const target& device, const decode_f16_args& a,
                          const kernels::decode_plan& plan) {
  if (kernels::decode_f16_runs_coopmat(device, a.head_dim, plan.heads_per_group))
    return label(kernels::decode_coopmat_tiles_for(a.head_dim));
  return label(kernels::default_decode_tiling(static_cast<int>(plan.heads_per_group)));
}

// --- the check ---------------------------------------------------------------

// Small ragged cases at head dim `dim`: GQA 8, 2, 4, 1, 8 again and 16 (two
// workgroups per KV head); rings, a sliding window, softcap, explicit
// splits, one long sharp single slice (the matrix kernel's rescales).
std::vector<decode_f16_args> check_cases(std::uint32_t dim) {
  auto make = [dim](std::uint32_t batch, std::uint32_t kv_heads, std::uint32_t group,
                    std::uint32_t length, std::uint32_t capacity) {
    decode_f16_args a;
    a.batch = batch;
    a.num_kv_heads = kv_heads;
    a.num_heads = kv_heads * group;
    a.head_dim = dim;
    a.kv_seq_len = length;
    a.kv_capacity = capacity;
    return a;
  };
  std::vector<decode_f16_args> cases;
  decode_f16_args a = make(2, 1, 8, 1000, 1029);
  a.ring_start = 17;
  cases.push_back(a);
  a = make(1, 3, 2, 333, 400);
  a.mask = kernels::decode_mask::sliding_window;
  a.sliding_window = 100;
  a.ring_start = 350;
  a.softcap = 30;
  a.nwg = 1;
  cases.push_back(a);
  a = make(3, 2, 4, 77, 77);
  a.scale = 0.4f;
  a.nwg = 5;
  cases.push_back(a);
  a = make(1, 4, 1, 1, 9);
  cases.push_back(a);
  a = make(1, 2, 8, 4099, 4099);
  a.scale = 1.0f;
  a.nwg = 1;
  cases.push_back(a);
  a = make(2, 1, 16, 300, 300);
  a.softcap = 20;
  cases.push_back(a);
  return cases;
}

// Runs `fn` on case `a` (unattended slots NaN, outputs NaN first) and
// compares with the reference; the largest error over the tolerance's
// scale (a value above 1 fails).
double check_case(vk::context& ctx, record_fn fn, const decode_f16_args& a, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  const std::size_t D = a.head_dim;
  std::vector<float> query(std::size_t{a.batch} * a.num_heads * D);
  for (float& x : query) x = uniform(rng);
  const std::size_t cache = std::size_t{a.batch} * a.num_kv_heads * a.kv_capacity * D;
  std::vector<f16> keys(cache), values(cache);
  const f16 poison = to_f16(std::nanf(""));
  for (std::size_t i = 0; i < cache; ++i) {
    const bool attended =
        reference::decode_attends(a, static_cast<std::uint32_t>(i / D % a.kv_capacity));
    keys[i] = attended ? to_f16(uniform(rng)) : poison;
    values[i] = attended ? to_f16(uniform(rng)) : poison;
  }
  const std::uint64_t scratch = kernels::decode_partials_size(std::uint64_t{a.batch} * a.num_heads,
                                                              a.head_dim, kernels::max_decode_nwg);
  input_set set{vk::buffer<float>(ctx, query.size()), vk::buffer<float>(ctx, query.size()),
                vk::buffer<float>(ctx, scratch), vk::buffer<f16>(ctx, cache),
                vk::buffer<f16>(ctx, cache)};
  set.q.upload(query);
  set.keys.upload(keys);
  set.values.upload(values);
  set.out.fill(std::nanf(""));
  set.scratch.fill(std::nanf(""));
  vk::recorder rec(ctx);
  fn(rec, set, a);
  rec.submit_and_wait();
  const std::vector<float> got = set.out.download();
  const std::vector<double> expected = reference::decode_f16(query, keys, values, a);
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    // decode_f16_test's tolerance.
    const double error = std::fabs(got[i] - expected[i]) / (2e-6 + 2e-5 * std::fabs(expected[i]));
    worst = std::isnan(error) ? INFINITY : std::max(worst, error);
  }
  return worst;
}

// Checks the host op at every shipped head dim and every configuration at
// its own; prints one line per configuration. False on any mismatch.
bool check_all(vk::context& ctx, const std::vector<variant>& variants) {
  std::mt19937_64 rng(7);
  bool all_pass = true;
  auto check = [&](const std::string& name, std::uint32_t dim, std::uint32_t heads, record_fn fn) {
    double worst = 0;
    const std::vector<decode_f16_args> cases = check_cases(dim);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      decode_f16_args a = cases[i];
      if (heads != 0 && a.num_heads / a.num_kv_heads % heads != 0) continue;
      a.heads_per_group = heads;
      const double error = check_case(ctx, fn, a, rng);
      if (error > 1) std::fprintf(stderr, "  case %zu: error / tolerance %.3g\n", i, error);
      worst = std::max(worst, error);
    }
    const bool pass = worst <= 1;
    all_pass = all_pass && pass;
    std::cout << bench::json_line()
                     .add("kind", "check")
                     .add("tiles", name)
                     .add("dim", dim)
                     .add("worst_error_over_tolerance", worst)
                     .add("pass", pass ? 1.0 : 0.0)
                     .str()
              << std::endl;
    std::fprintf(stderr, "check %-14s D=%-3u worst error / tolerance %.3g %s\n", name.c_str(), dim,
                 worst, pass ? "pass" : "FAIL");
  };
  for (std::uint32_t dim : {64u, 128u, 256u, 512u}) check("host op", dim, 0, record_default);
  for (const variant& v : variants)
    check(v.label + (v.heads ? " h" + std::to_string(v.heads) : ""), v.dim, v.heads, v.fn);
  return all_pass;
}

// "8,16,32" as numbers.
std::vector<std::uint32_t> parse_list(const std::string& text) {
  std::vector<std::uint32_t> values;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t used = 0;
    values.push_back(static_cast<std::uint32_t>(std::stoul(text.substr(at), &used)));
    at += used + 1;
  }
  return values;
}

// A JSON record of `kind` at shape `s`, for the caller to add what it
// measured.
bench::json_line shape_record(const std::string& kind, const shape& s) {
  bench::json_line record;
  record.add("kind", kind)
      .add("batch", s.batch)
      .add("heads", s.heads)
      .add("kv_heads", s.kv_heads)
      .add("dim", s.dim)
      .add("length", s.length);
  return record;
}

struct config {
  const variant* chosen = nullptr;  // null: the host op's own plan
  std::uint32_t nwg = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool sweep = false, quick = false, check = false;
  std::string kernel;  // empty: both
  // The sweep's NWG (0: the policy's) and head dims.
  std::vector<std::uint32_t> splits{0, 8, 16, 32, 64, 128, 256};
  std::vector<std::uint32_t> dims{64, 128, 256, 512};
  std::vector<std::uint32_t> coopmat_heads{0};  // 0: the plan's
  int reps = 100;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--sweep") == 0)
      sweep = true;
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--check") == 0)
      check = true;
    else if (std::strcmp(argv[i], "--kernel") == 0 && i + 1 < argc)
      kernel = argv[++i];
    else if (std::strcmp(argv[i], "--nwg") == 0 && i + 1 < argc)
      splits = parse_list(argv[++i]);
    else if (std::strcmp(argv[i], "--dims") == 0 && i + 1 < argc)
      dims = parse_list(argv[++i]);
    else if (std::strcmp(argv[i], "--heads") == 0 && i + 1 < argc)
      coopmat_heads = parse_list(argv[++i]);
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else {
      std::cerr << "usage: decode_bench [--sweep [--kernel coopmat|engine] [--nwg N,...] "
                   "[--dims D,...] [--heads H,...]] [--check] [--quick] [--reps N]\n";
      return 2;
    }
  }
  try {
    vk::context ctx;
    if (quick) reps = 3;
    const bench::copy_rates copy = bench::measure_copy(ctx, quick ? 16ull << 20 : 1ull << 30);
    const double copy_gbs = copy.best();
    std::cout << bench::json_line()
                     .add("kind", "copy")
                     .add("device", ctx.device().name)
                     .add("transfer_gbs", copy.transfer_gbs)
                     .add("shader_gbs", copy.shader_gbs)
                     .add("gbs", copy_gbs)
                     .str()
              << std::endl;
    std::fprintf(stderr,
                 "%s: copy %.0f GB/s by vkCmdCopyBuffer, %.0f GB/s by a shader (read + write)\n",
                 ctx.device().name.c_str(), copy.transfer_gbs, copy.shader_gbs);
    const target& device = ctx.target();
    std::vector<variant> variants;
    if (sweep)
      for (const variant& v : sweep_variants(device))
        if ((kernel.empty() || kernel == (v.coopmat ? "coopmat" : "engine")) &&
            std::find(dims.begin(), dims.end(), v.dim) != dims.end()) {
          if (!v.coopmat) {
            variants.push_back(v);
            continue;
          }
          for (std::uint32_t heads : coopmat_heads) {
            variant with_heads = v;
            with_heads.heads = heads;
            variants.push_back(with_heads);
          }
        }
    const bool checked = !check || check_all(ctx, variants);
    std::fprintf(stderr, "%-28s %12s %2s %4s %4s %9s %9s %9s %8s %6s\n", "shape", "tiles", "h",
                 "nwg", "sets", "median us", "p10", "p90", "GB/s", "copy%");

    const std::vector<shape> shapes = quick ? std::vector<shape>{{2, 8, 2, 128, 1000}}
                                            : std::vector<shape>{{1, 16, 8, 256, 4096},
                                                                 {1, 16, 8, 256, 32768},
                                                                 {1, 16, 2, 512, 32768},
                                                                 {8, 32, 8, 128, 32768}};
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (const shape& s : shapes) {
      decode_f16_args a;
      a.batch = s.batch;
      a.num_heads = s.heads;
      a.num_kv_heads = s.kv_heads;
      a.head_dim = s.dim;
      a.kv_seq_len = s.length;
      a.kv_capacity = s.length;
      const std::uint64_t cache = std::uint64_t{s.batch} * s.kv_heads * s.length * s.dim;
      const std::uint64_t rows = std::uint64_t{s.batch} * s.heads * s.dim;
      const double bytes = 2.0 * cache * sizeof(f16) + 2.0 * rows * sizeof(float);
      const int sets = bench::rotation_sets(static_cast<std::uint64_t>(bytes));
      const std::uint64_t scratch = kernels::decode_partials_size(std::uint64_t{s.batch} * s.heads,
                                                                  s.dim, kernels::max_decode_nwg);
      std::vector<input_set> inputs;
      std::vector<f16> host(cache);
      for (f16& x : host) x = to_f16(uniform(rng));
      std::vector<float> query(rows);
      for (float& x : query) x = uniform(rng);
      for (int i = 0; i < sets; ++i) {
        input_set set{vk::buffer<float>(ctx, rows), vk::buffer<float>(ctx, rows),
                      vk::buffer<float>(ctx, scratch), vk::buffer<f16>(ctx, cache),
                      vk::buffer<f16>(ctx, cache)};
        set.q.upload(query);
        set.keys.upload(host);
        set.values.upload(host);
        inputs.push_back(std::move(set));
      }

      // The default plan twice: the first measurement after new buffers
      // are allocated can be slow.
      std::vector<config> configs{{}, {}};
      if (sweep) {
        const std::uint32_t group = s.heads / s.kv_heads;
        for (const variant& v : variants)
          if (v.dim == s.dim && (v.heads == 0 || group % v.heads == 0))
            for (std::uint32_t nwg : splits)
              if (nwg * 64 <= s.length) configs.push_back({&v, nwg});
      }
      for (std::size_t ci = 0; ci < configs.size(); ++ci) {
        const config& c = configs[ci];
        decode_f16_args run = a;
        run.nwg = c.nwg;
        if (c.chosen) run.heads_per_group = c.chosen->heads;
        const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), run);
        const record_fn fn = c.chosen ? c.chosen->fn : record_default;
        const std::string tiles = c.chosen ? c.chosen->label : default_label(device, run, plan);
        const bool coopmat =
            c.chosen ? c.chosen->coopmat
                     : kernels::decode_f16_runs_coopmat(device, s.dim, plan.heads_per_group);
        const bench::timing t = bench::time_gpu(
            ctx, [&](vk::recorder& rec, int rep) { fn(rec, inputs[rep % sets], run); }, reps);
        const double gbs = bytes / (t.median_us * 1e3);
        const std::string name = "B" + std::to_string(s.batch) + " H" + std::to_string(s.heads) +
                                 " Hkv" + std::to_string(s.kv_heads) + " D" +
                                 std::to_string(s.dim) + " L" + std::to_string(s.length);
        std::cout << shape_record("decode_f16", s)
                         .add("default_plan", c.chosen == nullptr && ci > 0 ? 1.0 : 0.0)
                         .add("warmup", ci == 0 ? 1.0 : 0.0)
                         .add("kernel", coopmat ? "coopmat" : "engine")
                         .add("tiles", tiles)
                         .add("nwg", plan.nwg)
                         .add("heads_per_group", plan.heads_per_group)
                         .add("bytes", bytes)
                         .add("median_us", t.median_us)
                         .add("p10_us", t.p10_us)
                         .add("p90_us", t.p90_us)
                         .add("gbs", gbs)
                         .add("copy_fraction", gbs / copy_gbs)
                         .str()
                  << std::endl;
        std::fprintf(stderr, "%-28s %12s %2u %4u %4d %9.1f %9.1f %9.1f %8.0f %5.1f%%\n",
                     name.c_str(), tiles.c_str(), plan.heads_per_group, plan.nwg, sets, t.median_us,
                     t.p10_us, t.p90_us, gbs, 100 * gbs / copy_gbs);
      }

      // The reduce alone at the host op's split: its share of the time.
      const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), a);
      if (plan.nwg > 1) {
        const std::uint32_t rows = s.batch * s.heads;
        const bench::timing t = bench::time_gpu(
            ctx,
            [&](vk::recorder& rec, int rep) {
              const input_set& set = inputs[rep % sets];
              kernels::record_decode_reduce(rec, set.scratch, set.out, rows, s.dim, plan.nwg);
            },
            reps);
        std::cout << shape_record("decode_reduce", s)
                         .add("nwg", plan.nwg)
                         .add("median_us", t.median_us)
                         .str()
                  << std::endl;
        std::fprintf(stderr, "%-28s %12s    %4u      %9.1f (the reduce alone)\n", "", "reduce",
                     plan.nwg, t.median_us);
      }
    }
    if (!checked) {
      std::cerr << "decode_bench: a configuration differs from the reference (see the checks)\n";
      return 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "decode_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
