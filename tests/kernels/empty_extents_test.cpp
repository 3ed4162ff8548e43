// Zero-sized inputs through the catalog (what `tessel run --check` calls):
// for each op and each axis, every input of that rank gets an extent of 0.
// The op and its reference throw tessel::error or return, never crash, and
// what the op accepts the reference accepts. (The decode_f16 reference
// divided by num_kv_heads = 0 before it checked the op's rules.)
#include <gtest/gtest.h>

#include <optional>

#include "compiled_catalog.hpp"
#include "vk/fixture.hpp"

namespace {

class EmptyExtents : public tessel::test::device_test {};

TEST_F(EmptyExtents, EveryOpRejectsOrHandlesZeroSizedInputs) {
  for (const tessel::op_entry& op : tessel::tools::ops()) {
    const tessel::op_case start = op.demo_cases(tessel::test::test_seed()).front();
    for (std::size_t axis = 0; axis < 4; ++axis) {
      SCOPED_TRACE(op.name + " axis " + std::to_string(axis));
      tessel::tensor_map in = start.inputs;
      for (auto& [name, t] : in)
        if (t.shape.size() > axis) {
          t.shape[axis] = 0;
          t.data.clear();
        }
      bool reference_accepts = true, op_accepts = true;
      try {
        op.reference(in, start.params);
      } catch (const tessel::error&) {
        reference_accepts = false;
      }
      try {
        op.run(ctx(), in, start.params);
      } catch (const tessel::error&) {
        op_accepts = false;
      }
      EXPECT_TRUE(reference_accepts || !op_accepts) << "the op accepts what its reference rejects";
    }
  }
}

}  // namespace
