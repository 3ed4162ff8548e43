// `tessel bench`: GPU timings of the kernels at the benchmark shapes
// and over a sweep of sequence lengths, each set against a floor measured on
// the same device (the copy bandwidth for bytes, the matrix rate for FLOPs).
// Writes a table on stdout and bench.json, bench.csv and bench.svg.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench_report.hpp"
#include "bench_suites.hpp"
#include "commands.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/context.hpp"

namespace tessel::cli {

namespace {

struct planned {
  const bench_kernel* kernel;
  std::string set;
  std::vector<std::uint32_t> values;
};

std::uint32_t parse_count(std::string_view what, const std::string& text) {
  std::size_t used = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || text[0] == '-' || value > UINT32_MAX)
    throw usage_error(std::string(what) + " expects a non-negative integer, got '" + text + "'");
  return static_cast<std::uint32_t>(value);
}

// "KERNEL:DIM=V,DIM=V": dims left out take the values of the kernel's first
// benchmark shape.
planned parse_shape(const std::string& text) {
  const std::size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const bench_kernel* kernel = nullptr;
  std::string known;
  for (const bench_kernel& k : bench_kernels()) {
    if (k.name == name) kernel = &k;
    known += (known.empty() ? "" : ", ") + std::string(k.name);
  }
  if (!kernel) throw usage_error("--shape: unknown kernel '" + name + "' (kernels: " + known + ")");
  planned p{kernel, "custom", kernel->shapes.front()};
  if (colon == std::string::npos) return p;
  std::string rest = text.substr(colon + 1);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const auto [dim, value] = split_assignment("shape", rest.substr(0, comma));
    std::size_t i = 0;
    while (i < kernel->dims.size() && kernel->dims[i] != dim) ++i;
    if (i == kernel->dims.size()) {
      std::string dims;
      for (std::string_view d : kernel->dims) dims += " " + std::string(d);
      throw usage_error("--shape: " + name + " has no parameter '" + dim + "' (it has" + dims +
                        ")");
    }
    p.values[i] = parse_count("--shape " + dim, value);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return p;
}

std::vector<planned> plan(const parsed& args, bool quick) {
  std::vector<std::string> suites = args.positional;
  if (suites.empty() && !args.has("shape")) suites.push_back("all");
  for (const std::string& s : suites)
    if (s != "all" && std::none_of(bench_kernels().begin(), bench_kernels().end(),
                                   [&](const bench_kernel& k) { return k.suite == s; }))
      throw usage_error("unknown suite '" + s + "' (suites: decode, prefill, tq, all)");
  std::vector<planned> out;
  for (const bench_kernel& k : bench_kernels()) {
    if (std::none_of(suites.begin(), suites.end(),
                     [&](const std::string& s) { return s == "all" || s == k.suite; }))
      continue;
    for (const auto& shape : quick ? k.quick_shapes : k.shapes) out.push_back({&k, "issue", shape});
    const std::vector<std::uint32_t> base = quick ? k.quick_shapes.front() : k.sweep_base;
    std::size_t length_index = 0;
    while (k.dims[length_index] != k.length_dim) ++length_index;
    for (std::uint32_t length : quick ? k.quick_lengths : k.sweep_lengths) {
      planned p{&k, "sweep", base};
      p.values[length_index] = length;
      out.push_back(p);
    }
  }
  for (const std::string& s : args.all("shape")) out.push_back(parse_shape(s));
  return out;
}

// A progress line on a terminal; nothing when stderr is a pipe or a file.
class progress {
 public:
  progress() : on_(isatty(STDERR_FILENO) != 0) {}
  void show(const std::string& text) const {
    if (on_) std::fprintf(stderr, "\r\033[K%s", text.c_str());
  }
  void clear() const {
    if (on_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool on_;
};

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
  file.close();
  if (!file) throw error("bench", "cannot write " + path.string());
}

}  // namespace

int bench(const parsed& args) {
  const bool quick = args.has("quick");
  const std::vector<planned> cases = plan(args, quick);
  bench::repetitions how;
  if (quick) how = {3, 3, 0, 5};
  if (const auto reps = args.get("reps")) {
    how.max_reps = static_cast<int>(parse_count("--reps", *reps));
    if (how.max_reps == 0) throw usage_error("--reps must be at least 1");
    how.min_reps = std::min(how.min_reps, how.max_reps);
  }
  const std::filesystem::path out_dir = args.get("out").value_or("tessel-bench");

  vk::context ctx;
  const progress line;
  bench_environment env{ctx.device().name, ctx.device().driver, ctx.device().type, {}, {}, quick};
  line.show("measuring the copy bandwidth");
  env.copy = bench::measure_copy(ctx, quick ? 16ull << 20 : 1ull << 30, quick ? 3 : 20);
  line.show("measuring the matrix rate");
  env.matrix = bench::measure_matrix(ctx, quick ? 64 : 4096, quick ? 3 : 10);
  line.clear();
  std::cout << "device: " << env.device << " (" << env.type << ", " << env.driver << ")\n"
            << "copy: " << format("%.0f", env.copy.shader_gbs) << " GB/s by a shader, "
            << format("%.0f", env.copy.transfer_gbs)
            << " GB/s by vkCmdCopyBuffer (read + write)\nmatrix: "
            << format("%.2f", env.matrix.fma_tflops) << " TFLOP/s by f32 FMAs"
            << (env.matrix.coopmat_tflops > 0 ? ", " + format("%.1f", env.matrix.coopmat_tflops) +
                                                    " TFLOP/s by f16 cooperative matrices"
                                              : std::string(", no cooperative matrices"))
            << "\nfloor: bytes / " << format("%.0f", env.copy.best()) << " GB/s or FLOPs / "
            << format("%.2f", env.matrix.best()) << " TFLOP/s, whichever is longer\n\n";

  std::vector<bench_row> rows;
  int failed = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const planned& c = cases[i];
    const bench_kernel& k = *c.kernel;
    bench_row r;
    r.kernel = k.name;
    r.suite = k.suite;
    r.set = c.set;
    for (std::size_t d = 0; d < k.dims.size(); ++d) {
      const std::string part = std::string(k.dims[d]) + "=" + std::to_string(c.values[d]);
      r.dims.emplace_back(std::string(k.dims[d]), c.values[d]);
      r.shape += (r.shape.empty() ? "" : " ") + part;
      if (k.dims[d] == k.length_dim)
        r.length = c.values[d];
      else
        r.series += (r.series.empty() ? "" : " ") + part;
    }
    r.length_dim = k.length_dim;
    r.length_meaning = k.length_meaning;
    line.show("[" + std::to_string(i + 1) + "/" + std::to_string(cases.size()) + "] " + r.kernel +
              " " + r.shape);
    try {
      const bench_case prepared = k.prepare(ctx, bench_shape{&k.dims, c.values});
      r.bytes = prepared.bytes;
      r.flops = prepared.flops;
      r.sets = prepared.sets;
      r.time = bench::time_gpu(
          ctx, [&](vk::recorder& rec, int rep) { prepared.record(rec, rep % prepared.sets); }, how);
      r.floor_us = floor_us(env, r.bytes, r.flops);
      rows.push_back(std::move(r));
    } catch (const std::exception& e) {
      // One shape that does not fit the device must not hide the others.
      line.clear();
      std::cerr << "tessel bench: " << r.kernel << " " << r.shape << ": " << e.what() << "\n";
      ++failed;
    }
  }
  line.clear();
  std::cout << bench_table(rows);

  std::filesystem::create_directories(out_dir);
  write_file(out_dir / "bench.json", bench_json(env, rows));
  write_file(out_dir / "bench.csv", bench_csv(rows));
  write_file(out_dir / "bench.svg", bench_svg(env, rows));
  std::cout << "\nspread: (p90 - p10) / median. floor: the floor's time / the median.\n"
            << "wrote " << (out_dir / "bench.json").string() << ", bench.csv, bench.svg\n";
  if (failed) std::cout << failed << " shape(s) failed (see stderr)\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace tessel::cli
