// libFuzzer target: every op of the catalog (kernels/catalog.hpp), reached the
// way `tessel run` reaches it, with tensors and parameters mutated from the
// op's own demo cases (shapes, ranks, element types, data sizes, missing and
// unknown inputs, parameters set to edge values or removed). For every input:
//
//   - the op throws tessel::error, or accepts; never another exception, a
//     crash, a hang (libFuzzer's -timeout), a sanitizer report or a message
//     of the validation layer;
//   - what the device accepts, the reference accepts too (the device may
//     reject more: its limits are not the reference's);
//   - an accepted op's outputs have the reference's element counts and are
//     finite wherever the reference is (a NaN is the poison of an element
//     no invocation wrote, or garbage read);
//   - when the parameters are the demo case's (so values keep the scale the
//     op's tolerance is stated for), every output is within that tolerance;
//     integer outputs (quantizer codes) only while the inputs keep the demo
//     case's shapes and types, since reshaped rows are no longer clear of the
//     decision boundaries the demo data avoid.
//
// A new op needs nothing here: its catalog entry and demo cases are what
// the mutations start from. scripts/fuzz.sh builds and runs it.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiled_catalog.hpp"
#include "tessel/compare.hpp"
#include "tessel/vk.hpp"

namespace {

using tessel::op_entry;
using tessel::parameter_map;
using tessel::scalar_kind;
using tessel::tensor;
using tessel::tensor_map;

// Inputs stay small enough to upload and to run the reference in
// milliseconds; sizes beyond them are the fuzz of the limits, not of data.
constexpr std::uint64_t max_elements = std::uint64_t{1} << 16;

// Parameter values on the edges of the rules: zero, one, powers of two and
// their neighbours, the 32-bit edges, negatives, fractions, NaN, infinities.
constexpr double edge_values[] = {0,
                                  1,
                                  2,
                                  3,
                                  4,
                                  5,
                                  7,
                                  8,
                                  9,
                                  16,
                                  31,
                                  63,
                                  64,
                                  65,
                                  127,
                                  128,
                                  255,
                                  256,
                                  257,
                                  511,
                                  512,
                                  1024,
                                  65535,
                                  65536,
                                  2147483647.0,
                                  2147483648.0,
                                  4294967295.0,
                                  4294967296.0,
                                  1e20,
                                  -1,
                                  -0.5,
                                  0.5,
                                  1.5,
                                  std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::infinity(),
                                  -std::numeric_limits<double>::infinity()};

constexpr scalar_kind kinds[] = {scalar_kind::f16, scalar_kind::bf16, scalar_kind::f32,
                                 scalar_kind::u8,  scalar_kind::u16,  scalar_kind::u32,
                                 scalar_kind::i32, scalar_kind::u64,  scalar_kind::i64};

tessel::vk::context& fuzz_context() {
  static tessel::vk::context ctx;
  return ctx;
}

const std::vector<tessel::op_case>& cases_of(const op_entry& op) {
  static std::map<std::string, std::vector<tessel::op_case>> cases;
  auto it = cases.find(op.name);
  if (it == cases.end()) it = cases.emplace(op.name, op.demo_cases(1)).first;
  return it->second;
}

[[noreturn]] void fail(const op_entry& op, const std::string& mutations, const std::string& what) {
  std::fprintf(stderr, "tessel fuzz: %s after mutations [%s]: %s\n", op.name.c_str(),
               mutations.c_str(), what.c_str());
  std::abort();
}

// `t` with a new shape and kind; its bytes are the old ones repeated, so the
// values keep the demo case's distribution where the kind is unchanged.
tensor reshaped(const tensor& t, scalar_kind kind, std::vector<std::uint64_t> shape) {
  tensor out{kind, std::move(shape), {}};
  out.data.resize(out.elements() * tessel::kind_size(kind));
  for (std::size_t i = 0; i < out.data.size(); ++i)
    out.data[i] = t.data.empty() ? std::byte{0} : t.data[i % t.data.size()];
  return out;
}

std::uint64_t elements_of(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (std::uint64_t d : shape) {
    if (d != 0 && n > max_elements / d) return max_elements + 1;
    n *= d;
  }
  return n;
}

std::string name_of_parameter(FuzzedDataProvider& data, const op_entry& op) {
  const std::size_t pick = data.ConsumeIntegralInRange<std::size_t>(0, op.params.size());
  return pick < op.params.size() ? op.params[pick].name : "unknown_parameter";
}

double parameter_value(FuzzedDataProvider& data) {
  if (data.ConsumeBool()) return data.PickValueInArray(edge_values);
  return static_cast<double>(data.ConsumeIntegralInRange<std::int64_t>(-2, 600));
}

// One mutation of the inputs or the parameters; appends what it did to `log`.
void mutate(FuzzedDataProvider& data, const op_entry& op, tensor_map& in, parameter_map& params,
            std::string& log) {
  std::vector<std::string> names;
  for (const auto& [name, t] : in) names.push_back(name);
  switch (data.ConsumeIntegralInRange(0, 6)) {
    case 0: {  // set a parameter
      const std::string name = name_of_parameter(data, op);
      params[name] = parameter_value(data);
      log += name + "=" + std::to_string(params[name]) + " ";
      break;
    }
    case 1: {  // drop a parameter
      const std::string name = name_of_parameter(data, op);
      params.erase(name);
      log += "-" + name + " ";
      break;
    }
    case 2:    // change one extent of an input
    case 3: {  // add or remove an axis
      if (names.empty()) break;
      const std::string& name =
          names[data.ConsumeIntegralInRange<std::size_t>(0, names.size() - 1)];
      tensor& t = in[name];
      std::vector<std::uint64_t> shape = t.shape;
      const std::uint64_t extent = data.ConsumeBool()
                                       ? data.ConsumeIntegralInRange<std::uint64_t>(0, 600)
                                       : static_cast<std::uint64_t>(data.PickValueInArray(
                                             {0, 1, 2, 3, 7, 8, 16, 64, 65, 128, 256, 512}));
      if (shape.empty() || data.ConsumeBool()) {
        if (data.ConsumeBool() || shape.empty())
          shape.insert(shape.begin() + data.ConsumeIntegralInRange<std::size_t>(0, shape.size()),
                       extent);
        else
          shape.erase(shape.begin() +
                      data.ConsumeIntegralInRange<std::size_t>(0, shape.size() - 1));
      } else {
        shape[data.ConsumeIntegralInRange<std::size_t>(0, shape.size() - 1)] = extent;
      }
      if (elements_of(shape) > max_elements) break;
      t = reshaped(t, t.kind, std::move(shape));
      log += name + t.shape_text() + " ";
      break;
    }
    case 4: {  // change an input's element type
      if (names.empty()) break;
      const std::string& name =
          names[data.ConsumeIntegralInRange<std::size_t>(0, names.size() - 1)];
      tensor& t = in[name];
      t = reshaped(t, data.PickValueInArray(kinds), t.shape);
      log += name + ":" + std::string(tessel::kind_name(t.kind)) + " ";
      break;
    }
    case 5: {  // drop an input, or add one the op does not know
      if (!names.empty() && data.ConsumeBool()) {
        const std::string& name =
            names[data.ConsumeIntegralInRange<std::size_t>(0, names.size() - 1)];
        in.erase(name);
        log += "-" + name + " ";
      } else {
        in["unknown_input"] = tensor::zeros(scalar_kind::f32, {4});
        log += "+unknown_input ";
      }
      break;
    }
    default: {  // data bytes that disagree with the shape
      if (names.empty()) break;
      const std::string& name =
          names[data.ConsumeIntegralInRange<std::size_t>(0, names.size() - 1)];
      tensor& t = in[name];
      t.data.resize(data.ConsumeIntegralInRange<std::size_t>(0, t.data.size() + 8));
      log += name + " bytes=" + std::to_string(t.data.size()) + " ";
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  const auto& catalog = tessel::tools::ops();
  const op_entry& op = catalog[data.ConsumeIntegralInRange<std::size_t>(0, catalog.size() - 1)];
  const auto& cases = cases_of(op);
  const tessel::op_case& start =
      cases[data.ConsumeIntegralInRange<std::size_t>(0, cases.size() - 1)];
  tensor_map in = start.inputs;
  parameter_map params = start.params;
  std::string log = start.shape + ": ";
  const int mutations = data.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < mutations; ++i) mutate(data, op, in, params, log);

  // TESSEL_FUZZ_TRACE=1 prints each input's op, case and mutations (replaying
  // one saved input, say).
  static const bool trace = std::getenv("TESSEL_FUZZ_TRACE") != nullptr;
  if (trace) std::fprintf(stderr, "tessel fuzz: %s %s\n", op.name.c_str(), log.c_str());
  std::optional<tessel::reference_map> want;
  try {
    want = op.reference(in, params);
  } catch (const tessel::error&) {
  }
  tessel::vk::context& ctx = fuzz_context();
  std::optional<tensor_map> got;
  try {
    got = op.run(ctx, in, params);
  } catch (const tessel::error&) {
  }
  for (const std::string& message : ctx.validation_messages())
    fail(op, log, "validation message: " + message);
  if (!got) return 0;
  if (!want) fail(op, log, "the device accepted inputs the reference rejects");
  const bool demo_parameters = params == start.params;
  bool demo_tensors = in.size() == start.inputs.size();
  for (const auto& [name, t] : start.inputs) {
    const auto it = in.find(name);
    demo_tensors =
        demo_tensors && it != in.end() && it->second.kind == t.kind && it->second.shape == t.shape;
  }
  for (const tessel::op_argument& output : op.outputs) {
    const auto result = got->find(output.name);
    if (result == got->end()) fail(op, log, "output " + output.name + " is missing");
    const std::vector<double>& reference = want->at(output.name);
    if (result->second.elements() != reference.size())
      fail(op, log,
           output.name + " has " + std::to_string(result->second.elements()) +
               " elements, the reference " + std::to_string(reference.size()));
    const bool integer =
        result->second.kind == scalar_kind::u8 || result->second.kind == scalar_kind::u32;
    const bool compare_values = demo_parameters && (!integer || demo_tensors);
    const tessel::op_tolerance tolerance =
        op.tolerance(ctx.target(), in, params, result->second.kind);
    const tessel::op_error e =
        compare_values ? tessel::compare(result->second, reference, tolerance.abs, tolerance.rel)
                       : tessel::compare(result->second, reference,
                                         std::numeric_limits<double>::infinity(), 0);
    if (e.non_finite != 0 || e.out_of_bound != 0)
      fail(op, log,
           output.name + ": " + std::to_string(e.out_of_bound) + " elements out of tolerance (" +
               std::to_string(e.non_finite) + " non-finite), max abs " + std::to_string(e.max_abs) +
               ", max rel " + std::to_string(e.max_rel));
  }
  return 0;
}
