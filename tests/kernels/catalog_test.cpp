// Every op of the catalog, on its seeded demo cases, against its reference
// with the op's stated tolerance; outputs are poisoned by the ops themselves.
#include <gtest/gtest.h>

#include <algorithm>

#include "compiled_catalog.hpp"
#include "tessel/compare.hpp"
#include "tessel/kernels/prefill_coopmat.hpp"
#include "vk/fixture.hpp"

namespace {

class Catalog : public tessel::test::device_test {};

TEST_F(Catalog, EveryOpMatchesItsReferenceOnItsDemoCases) {
  for (const tessel::op_entry& op : tessel::tools::ops()) {
    const std::uint64_t seed = tessel::test::test_seed();
    for (const tessel::op_case& c : op.demo_cases(seed)) {
      SCOPED_TRACE(op.name + " " + c.shape + " seed " + std::to_string(seed));
      const tessel::tensor_map got = op.run(ctx(), c.inputs, c.params);
      const tessel::reference_map want = op.reference(c.inputs, c.params);
      ASSERT_EQ(got.size(), op.outputs.size());
      for (const tessel::op_argument& out : op.outputs) {
        const tessel::tensor& result = got.at(out.name);
        const tessel::op_tolerance tolerance =
            op.tolerance(ctx().target(), c.inputs, c.params, result.kind);
        const tessel::op_error e =
            tessel::compare(result, want.at(out.name), tolerance.abs, tolerance.rel);
        EXPECT_EQ(e.non_finite, 0u) << out.name;
        EXPECT_EQ(e.out_of_bound, 0u)
            << out.name << ": max abs " << e.max_abs << ", max rel " << e.max_rel;
      }
    }
  }
}

// The prefill's tolerance follows the kernel the target runs: the portable
// one's half an ulp plus 1e-5, and the coopmat one's f16 probabilities on top.
TEST(CatalogTolerance, PrefillFollowsThePathTheTargetTakes) {
  const auto& ops = tessel::tools::ops();
  const auto prefill = std::find_if(
      ops.begin(), ops.end(), [](const tessel::op_entry& op) { return op.name == "prefill"; });
  ASSERT_NE(prefill, ops.end());
  for (const tessel::op_case& c : prefill->demo_cases(3)) {
    SCOPED_TRACE(c.shape);
    const tessel::tensor& q = c.inputs.at("q");
    const tessel::op_tolerance portable = prefill->tolerance(q.kind);
    const tessel::op_tolerance on_lavapipe =
        prefill->tolerance(tessel::targets::portable, c.inputs, c.params, q.kind);
    EXPECT_EQ(on_lavapipe.abs, portable.abs);
    EXPECT_EQ(on_lavapipe.rel, portable.rel);
    const tessel::op_tolerance on_nvidia =
        prefill->tolerance(tessel::targets::nvidia, c.inputs, c.params, q.kind);
    const double max_v = tessel::max_magnitude(c.inputs.at("v"));
    EXPECT_GT(max_v, 0.5);
    EXPECT_EQ(on_nvidia.abs,
              portable.abs + tessel::kernels::prefill_coopmat_probability_error(max_v));
    EXPECT_EQ(on_nvidia.rel, portable.rel);
  }
}

TEST_F(Catalog, ShapeParametersMustAgreeWithTheInputs) {
  const tessel::op_entry& fwht = tessel::tools::ops().front();
  ASSERT_EQ(fwht.name, "fwht");
  const auto c = fwht.demo_cases(1).front();
  tessel::parameter_map params = c.params;
  params["head_dim"] = 64;
  EXPECT_THROW(fwht.run(ctx(), c.inputs, params), tessel::error);
  EXPECT_THROW(fwht.run(ctx(), {}, c.params), tessel::error);
}

}  // namespace
