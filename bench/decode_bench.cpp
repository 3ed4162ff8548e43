// Decode attention over an f16 KV cache on the default device: GPU time per
// call at the shapes of docs/perf/decode_f16.md, bytes moved, and the
// fraction of the measured copy bandwidth reached. One JSON line per
// measurement on stdout, a table on stderr.
//
//   decode_bench            the shapes with the host op's own plan
//   decode_bench --sweep    also every NWG / subgroup count / head grouping
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

template <int D, int NSG>
void record(vk::recorder& rec, const input_set& s, const decode_f16_args& a) {
  kernels::record_decode_f16_for<D, NSG>(rec, s.q, s.keys, s.values, s.out, &s.scratch, a);
}

record_fn pick(std::uint32_t dim, int nsg) {
  const int key = static_cast<int>(dim) * 100 + nsg;
  switch (key) {
    case 12802:
      return record<128, 2>;
    case 12804:
      return record<128, 4>;
    case 12808:
      return record<128, 8>;
    case 25602:
      return record<256, 2>;
    case 25604:
      return record<256, 4>;
    case 25608:
      return record<256, 8>;
    case 51202:
      return record<512, 2>;
    case 51204:
      return record<512, 4>;
    case 51208:
      return record<512, 8>;
    default:
      return nullptr;
  }
}

struct config {
  int nsg = kernels::decode_subgroups;
  std::uint32_t nwg = 0, heads_per_group = 0;
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
    std::fprintf(stderr, "%-28s %5s %4s %4s %4s %9s %9s %9s %8s %6s\n", "shape", "nsg", "nwg",
                 "hpg", "sets", "median us", "p10", "p90", "GB/s", "copy%");

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

      std::vector<config> configs{{}};
      if (sweep) {
        const std::uint32_t group = s.heads / s.kv_heads;
        for (int nsg : {2, 4, 8})
          for (std::uint32_t nwg : {0u, 16u, 32u, 64u, 128u, 256u})
            for (std::uint32_t hpg = 1; hpg <= kernels::max_heads_per_group(s.dim); hpg *= 2)
              if (group % hpg == 0 &&
                  (hpg == 1 || hpg * 2 > kernels::max_heads_per_group(s.dim) || hpg * 2 > group))
                configs.push_back({nsg, nwg, hpg});
      }
      for (const config& c : configs) {
        decode_f16_args run = a;
        run.nwg = c.nwg;
        run.heads_per_group = c.heads_per_group;
        const kernels::decode_plan plan = kernels::plan_decode_f16(ctx.device(), run, c.nsg);
        const record_fn fn = pick(s.dim, c.nsg);
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
                         .add("default_plan", c.nwg == 0 && c.heads_per_group == 0 &&
                                                      c.nsg == kernels::decode_subgroups
                                                  ? 1.0
                                                  : 0.0)
                         .add("nsg", c.nsg)
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
        std::fprintf(stderr, "%-28s %5d %4u %4u %4d %9.1f %9.1f %9.1f %8.0f %5.1f%%\n",
                     name.c_str(), c.nsg, plan.nwg, plan.heads_per_group, sets, t.median_us,
                     t.p10_us, t.p90_us, gbs, 100 * gbs / copy_gbs);
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "decode_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
