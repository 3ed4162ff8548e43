// Decode attention over an f16 KV cache on the default device: GPU time per
// call at the shapes of docs/perf/decode_f16.md, bytes moved, and the
// fraction of the measured copy bandwidth reached. One JSON line per
// measurement on stdout, a table on stderr.
//
//   decode_bench            the shapes with the host op's own plan
//   decode_bench --sweep    also every tiling of sweep_variants() and several NWG
//   decode_bench --quick    one small shape, a few repetitions (a smoke test
//                           that runs on lavapipe)
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tessel/bench/json.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/kernels/decode_f16.hpp"

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
using kernels::decode_tiling;

template <int D, decode_tiling T>
void record(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16_tiled<D, T>(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

// A tiling the sweep tries, compiled in.
struct variant {
  std::uint32_t dim;
  decode_tiling tiling;
  record_fn fn;
};

template <int D, decode_tiling... Ts>
void add_variants(std::vector<variant>& list) {
  (list.push_back({D, Ts, &record<D, Ts>}), ...);
}

// The tilings of the sweep for the head dims of its shapes: (heads, heads
// per subgroup, position splits).
std::vector<variant> sweep_variants() {
  std::vector<variant> list;
  add_variants<128, decode_tiling{1, 1, 2}, decode_tiling{1, 1, 4}, decode_tiling{2, 1, 1},
               decode_tiling{2, 1, 2}, decode_tiling{4, 1, 1}, decode_tiling{4, 1, 2},
               decode_tiling{4, 2, 1}>(list);
  add_variants<256, decode_tiling{1, 1, 1}, decode_tiling{1, 1, 2}, decode_tiling{1, 1, 4},
               decode_tiling{2, 1, 1}, decode_tiling{2, 1, 2}, decode_tiling{2, 1, 4},
               decode_tiling{2, 2, 1}>(list);
  add_variants<512, decode_tiling{2, 1, 1}, decode_tiling{2, 1, 2}, decode_tiling{4, 1, 1},
               decode_tiling{4, 1, 2}, decode_tiling{8, 1, 1}, decode_tiling{8, 1, 2},
               decode_tiling{8, 2, 1}>(list);
  return list;
}

void record_default(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

struct config {
  const variant* tiled = nullptr;  // null: the host op's own plan
  std::uint32_t nwg = 0;
};

}  // namespace

int main(int argc, char** argv) {
  bool sweep = false, quick = false;
  int reps = 100;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--sweep") == 0)
      sweep = true;
    else if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else {
      std::cerr << "usage: decode_bench [--sweep] [--quick] [--reps N]\n";
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
    std::fprintf(stderr, "%-28s %6s %4s %4s %9s %9s %9s %8s %6s\n", "shape", "h/r/p", "nwg", "sets",
                 "median us", "p10", "p90", "GB/s", "copy%");
    const std::vector<variant> variants = sweep ? sweep_variants() : std::vector<variant>{};

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
          if (v.dim == s.dim && group % static_cast<std::uint32_t>(v.tiling.heads) == 0)
            for (std::uint32_t nwg : {0u, 8u, 16u, 24u, 32u, 48u, 64u, 128u})
              if (nwg * 64 <= s.length) configs.push_back({&v, nwg});
      }
      for (std::size_t ci = 0; ci < configs.size(); ++ci) {
        const config& c = configs[ci];
        decode_f16_args run = a;
        run.nwg = c.nwg;
        if (c.tiled) run.heads_per_group = static_cast<std::uint32_t>(c.tiled->tiling.heads);
        const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), run);
        const record_fn fn = c.tiled ? c.tiled->fn : record_default;
        const decode_tiling tiling =
            c.tiled ? c.tiled->tiling
                    : kernels::default_decode_tiling(static_cast<int>(plan.heads_per_group));
        const bench::timing t = bench::time_gpu(
            ctx, [&](vk::recorder& rec, int rep) { fn(rec, inputs[rep % sets], run); }, reps);
        const double gbs = bytes / (t.median_us * 1e3);
        const std::string name = "B" + std::to_string(s.batch) + " H" + std::to_string(s.heads) +
                                 " Hkv" + std::to_string(s.kv_heads) + " D" +
                                 std::to_string(s.dim) + " L" + std::to_string(s.length);
        std::cout << bench::json_line()
                         .add("kind", "decode_f16")
                         .add("batch", s.batch)
                         .add("heads", s.heads)
                         .add("kv_heads", s.kv_heads)
                         .add("dim", s.dim)
                         .add("length", s.length)
                         .add("default_plan", c.tiled == nullptr && ci > 0 ? 1.0 : 0.0)
                         .add("heads_per_subgroup", tiling.heads_per_subgroup)
                         .add("position_splits", tiling.position_splits)
                         .add("nsg", tiling.subgroups())
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
        std::fprintf(stderr, "%-28s %2d/%d/%d %4u %4d %9.1f %9.1f %9.1f %8.0f %5.1f%%\n",
                     name.c_str(), tiling.heads, tiling.heads_per_subgroup, tiling.position_splits,
                     plan.nwg, sets, t.median_us, t.p10_us, t.p90_us, gbs, 100 * gbs / copy_gbs);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "decode_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
