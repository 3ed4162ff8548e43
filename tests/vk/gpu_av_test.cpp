// The positive control of the GPU-assisted validation runs (tests/CMakeLists.txt,
// gpu_av.*): with VK_VALIDATION_FEATURE_ENABLE_GPU_ASSISTED_EXT on, a write
// past the end of a storage buffer is reported, so a clean kernel run under
// GPU-AV means something. Skipped when GPU-AV is off: without it the write
// would only be caught by the driver's own bounds checks, if it has any.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "vk/fixture.hpp"

namespace tessel::test {
namespace {

struct IndexParams {
  std::uint32_t index;
};
TESSEL_PARAMS(IndexParams, index);

// y[params.index] = 1: any index the host picks, in bounds or not.
struct writes_at_index {
  static constexpr auto name = tessel::name("test_writes_at_index");
  using params = IndexParams;
  using bindings = tessel::bindings<tessel::out<"y", float>>;
  using workgroup = tessel::workgroup<1>;
  static constexpr std::string_view body = "void main() { y[params.index] = 1.0; }\n";
};

bool gpu_assisted_validation() {
  const char* enables = std::getenv("VK_LAYER_ENABLES");
  return enables && std::string_view(enables).find("GPU_ASSISTED") != std::string_view::npos;
}

class gpu_av : public device_test {};

TEST_F(gpu_av, reports_a_write_past_the_end_of_a_buffer) {
  if (!gpu_assisted_validation() || !ctx().validation_enabled())
    GTEST_SKIP() << "GPU-assisted validation is off (VK_LAYER_ENABLES, TESSEL_VALIDATION=1)";
  vk::buffer<float> y(ctx(), 256);
  y.fill(0.0f);
  vk::recorder rec(ctx());
  rec.dispatch<writes_at_index>(IndexParams{255}, {}, {1, 1, 1}, y);
  rec.submit_and_wait();
  EXPECT_TRUE(ctx().validation_messages().empty()) << "an in-bounds write was reported";
  // 4 KiB past the end: the layer reports the binding and the bytes reached.
  rec.dispatch<writes_at_index>(IndexParams{256 + 1024}, {}, {1, 1, 1}, y);
  rec.submit_and_wait();
  const std::vector<std::string> messages = ctx().validation_messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("access out of bounds"), std::string::npos) << messages[0];
  EXPECT_NE(messages[0].find("highest byte accessed was 5123"), std::string::npos) << messages[0];
  ctx().clear_validation_messages();
}

}  // namespace
}  // namespace tessel::test
