// Determinism: the same inputs give bit-identical outputs run to run on one
// device, for every op of the catalog on its demo cases. No kernel sums in
// an order that depends on scheduling (no float atomics, fixed reduction
// trees), so any difference here is a race or a read of uninitialized memory.
#include <gtest/gtest.h>

#include "compiled_catalog.hpp"
#include "vk/fixture.hpp"

namespace {

class Determinism : public tessel::test::device_test {};

TEST_F(Determinism, EveryOpGivesBitIdenticalOutputsRunToRun) {
  constexpr int runs = 3;
  for (const tessel::op_entry& op : tessel::tools::ops()) {
    const std::uint64_t seed = tessel::test::test_seed();
    for (const tessel::op_case& c : op.demo_cases(seed)) {
      SCOPED_TRACE(op.name + " " + c.shape + " seed " + std::to_string(seed));
      const tessel::tensor_map first = op.run(ctx(), c.inputs, c.params);
      for (int run = 1; run < runs; ++run) {
        const tessel::tensor_map again = op.run(ctx(), c.inputs, c.params);
        ASSERT_EQ(again.size(), first.size());
        for (const auto& [name, t] : first) {
          const tessel::tensor& u = again.at(name);
          EXPECT_EQ(u.shape, t.shape) << name;
          // Bytes, not values: NaN payloads and signed zeros count too.
          EXPECT_TRUE(u.data == t.data) << name << " differs in run " << run;
        }
      }
    }
  }
}

}  // namespace
