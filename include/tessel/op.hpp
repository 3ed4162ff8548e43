// The run-time catalog entry of a host op: what `tessel run`, `tessel run
// --list` and `tessel demo` know of an op. Each kernel family's header
// defines its entries next to its typed host op; kernels/catalog.hpp lists
// them all.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/tensor.hpp"

namespace tessel::vk {
class context;
}

namespace tessel {

struct target;

// One input or output of an op: its binding name, element type, and shape in
// terms of the op's parameters (for --list and error messages).
struct op_argument {
  std::string name;
  scalar_kind kind;
  std::string shape;  // e.g. "[num_heads, head_dim]"
  std::string description;
  // Further element types accepted besides `kind` (prefill: f16 or bf16).
  std::vector<scalar_kind> other_kinds = {};
  // An optional input may be left out (prefill's mask).
  bool optional = false;

  bool accepts(scalar_kind k) const {
    return k == kind || std::find(other_kinds.begin(), other_kinds.end(), k) != other_kinds.end();
  }
  // "f16" or "f16|bf16".
  std::string kinds_text() const {
    std::string out(kind_name(kind));
    for (scalar_kind k : other_kinds) out += "|" + std::string(kind_name(k));
    return out;
  }
};

// A named scalar parameter: a parameter-block field or an op-level option.
struct op_parameter {
  std::string name;
  std::string description;
  std::optional<double> default_value;  // nullopt: required, unless inferred_from is set
  // Shape fields default to what the inputs' shapes say ("data.shape[0]");
  // a given value must agree with the shape.
  std::string inferred_from;
};

using tensor_map = std::map<std::string, tensor>;
using parameter_map = std::map<std::string, double>;
using reference_map = std::map<std::string, std::vector<double>>;

struct op_tolerance {
  double abs = 0;
  double rel = 0;
};

struct op_case {
  std::string shape;  // human-readable summary for tables ("H=8 D=256")
  tensor_map inputs;
  parameter_map params;
};

struct op_entry {
  std::string name;
  std::string description;
  std::vector<op_argument> inputs;
  std::vector<op_argument> outputs;
  std::vector<op_parameter> params;
  // Validates every input and parameter, then runs on the device. Throws
  // tessel::error (naming the argument and the rule) before dispatching
  // anything when the input is bad. Returns the outputs by name.
  std::function<tensor_map(vk::context&, const tensor_map&, const parameter_map&)> run;
  // The double-precision reference of the same outputs (same validation).
  std::function<reference_map(const tensor_map&, const parameter_map&)> reference;
  // Seeded random cases for the demo and tests; never all zeros.
  std::function<std::vector<op_case>(std::uint64_t seed)> demo_cases;
  // The tolerance the tests hold this op to: |gpu - ref| <= abs + rel * |ref|.
  double abs_tolerance = 1e-5;
  double rel_tolerance = 1e-5;
  // Tolerances for outputs of particular element types, where they differ
  // (an f16 output is rounded more finely than a bf16 one).
  std::vector<std::pair<scalar_kind, op_tolerance>> kind_tolerances = {};

  // Where the bound also depends on the kernel the device runs and on the
  // inputs (prefill's cooperative-matrix kernel rounds probabilities to
  // f16), the tolerance of an output of element type `output` for these
  // inputs on a device of target `t`; empty when tolerance(output) holds
  // everywhere. `tolerance_note` says how it differs, for --list.
  std::function<op_tolerance(const target& t, const tensor_map&, const parameter_map&,
                             scalar_kind output)>
      device_tolerance = {};
  std::string tolerance_note = {};

  // The tolerance of an output of element type `output`.
  op_tolerance tolerance(scalar_kind output) const {
    for (const auto& [kind, t] : kind_tolerances)
      if (kind == output) return t;
    return {abs_tolerance, rel_tolerance};
  }
  // The tolerance of an output of element type `output` of a run on target
  // `t` with these inputs and parameters.
  op_tolerance tolerance(const target& t, const tensor_map& inputs, const parameter_map& params,
                         scalar_kind output) const {
    return device_tolerance ? device_tolerance(t, inputs, params, output) : tolerance(output);
  }
};

// Error of a device result against the reference.
struct op_error {
  double max_abs = 0;
  double max_rel = 0;
  std::uint64_t non_finite = 0;    // NaN/inf in the result where the reference is finite
  std::uint64_t out_of_bound = 0;  // elements beyond abs_tolerance + rel_tolerance * |ref|
};

}  // namespace tessel
