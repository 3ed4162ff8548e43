// `tessel demo`: every op's seeded demo cases on the default device, each
// compared with the double-precision reference by the rule op_entry states.
// A quick end-to-end check of a machine: driver, compiler, kernels.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "compiled_catalog.hpp"
#include "tessel/compare.hpp"
#include "tessel/error.hpp"
#include "tessel/op.hpp"
#include "tessel/vk/context.hpp"

namespace tessel::cli {

namespace {

struct row {
  std::string op, shape, max_abs, max_rel, time, status;
};

std::string scientific(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2e", value);
  return text;
}

std::uint64_t parse_seed(const std::string& text) {
  std::size_t used = 0;
  std::uint64_t value = 0;
  try {
    value = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || text[0] == '-')
    throw usage_error("--seed expects a non-negative integer, got '" + text + "'");
  return value;
}

row run_case(vk::context& ctx, const op_entry& op, const op_case& c) {
  row r{op.name, c.shape, "-", "-", "-", "ok"};
  // Parameters a case leaves out take their defaults, as in `tessel run`.
  parameter_map params = c.params;
  for (const op_parameter& p : op.params)
    if (p.default_value && !params.count(p.name)) params[p.name] = *p.default_value;
  try {
    const reference_map want = op.reference(c.inputs, params);
    const auto start = std::chrono::steady_clock::now();
    const tensor_map got = op.run(ctx, c.inputs, params);
    const std::chrono::duration<double, std::milli> elapsed =
        std::chrono::steady_clock::now() - start;
    char ms[32];
    std::snprintf(ms, sizeof ms, "%.3f", elapsed.count());
    r.time = ms;
    op_error worst;
    bool ok = true;
    for (const op_argument& out : op.outputs) {
      const auto g = got.find(out.name);
      const auto w = want.find(out.name);
      if (g == got.end() || w == want.end())
        throw error(op.name, "output '" + out.name + "' missing from the run or the reference");
      const op_tolerance tolerance = op.tolerance(ctx.target(), c.inputs, params, g->second.kind);
      const op_error e = compare(g->second, w->second, tolerance.abs, tolerance.rel);
      worst.max_abs = std::max(worst.max_abs, e.max_abs);
      worst.max_rel = std::max(worst.max_rel, e.max_rel);
      ok = ok && within_tolerance(e);
      if (!within_tolerance(e))
        r.status = "FAIL (" + out.name + ": " + std::to_string(e.out_of_bound) +
                   " out of tolerance, " + std::to_string(e.non_finite) + " non-finite)";
    }
    r.max_abs = scientific(worst.max_abs);
    r.max_rel = scientific(worst.max_rel);
  } catch (const std::exception& e) {
    // One broken case must not hide the others' results.
    r.status = std::string("FAIL (") + e.what() + ")";
  }
  return r;
}

void print_table(const std::vector<row>& rows) {
  const row header{"op", "shape", "max abs err", "max rel err", "wall ms", "status"};
  std::size_t w[5] = {header.op.size(), header.shape.size(), header.max_abs.size(),
                      header.max_rel.size(), header.time.size()};
  for (const row& r : rows) {
    w[0] = std::max(w[0], r.op.size());
    w[1] = std::max(w[1], r.shape.size());
    w[2] = std::max(w[2], r.max_abs.size());
    w[3] = std::max(w[3], r.max_rel.size());
    w[4] = std::max(w[4], r.time.size());
  }
  const auto pad = [](const std::string& s, std::size_t width, bool right) {
    const std::string fill(width - s.size(), ' ');
    return right ? fill + s : s + fill;
  };
  const auto print = [&](const row& r) {
    std::cout << pad(r.op, w[0], false) << "  " << pad(r.shape, w[1], false) << "  "
              << pad(r.max_abs, w[2], true) << "  " << pad(r.max_rel, w[3], true) << "  "
              << pad(r.time, w[4], true) << "  " << r.status << "\n";
  };
  print(header);
  for (const row& r : rows) print(r);
}

}  // namespace

int demo(const parsed& args) {
  const std::uint64_t seed = parse_seed(args.get("seed").value_or("1"));
  const std::string pattern = args.get("op").value_or("");
  std::vector<const op_entry*> ops;
  for (const op_entry& op : tools::ops())
    if (pattern.empty() || matches(pattern, op.name)) ops.push_back(&op);
  if (ops.empty()) throw usage_error("no op name matches '" + pattern + "'");

  vk::context ctx;
  std::cout << "device: " << ctx.device().name << " (" << ctx.device().type << ", "
            << ctx.device().driver << ")\nseed: " << seed
            << (ctx.validation_enabled() ? "\nvalidation: on" : "\nvalidation: off") << "\n\n";
  std::vector<row> rows;
  for (const op_entry* op : ops) {
    std::vector<op_case> cases;
    try {
      cases = op->demo_cases(seed);
    } catch (const std::exception& e) {
      rows.push_back({op->name, "-", "-", "-", "-", std::string("FAIL (") + e.what() + ")"});
    }
    for (const op_case& c : cases) rows.push_back(run_case(ctx, *op, c));
  }
  print_table(rows);
  std::cout << "\nwall ms: one op.run (upload, dispatch, download; the first use of a variant\n"
               "also creates its pipeline). Tolerance: |gpu - ref| <= abs + rel * |ref|.\n";

  const std::size_t failed = static_cast<std::size_t>(
      std::count_if(rows.begin(), rows.end(), [](const row& r) { return r.status != "ok"; }));
  // The context prints each validation message on stderr as it arrives.
  const auto messages = ctx.validation_messages();
  std::cout << rows.size() - failed << " of " << rows.size() << " cases ok";
  if (ctx.validation_enabled())
    std::cout << ", " << messages.size() << " validation message(s)"
              << (messages.empty() ? "" : " (printed on stderr)");
  std::cout << "\n";
  return failed == 0 && messages.empty() ? 0 : 1;
}

}  // namespace tessel::cli
