// One Vulkan context for the whole test binary (creating one on lavapipe with
// validation costs a noticeable fraction of a second), and a fixture that
// fails any test after which the validation layer has said something.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tessel/vk.hpp"

namespace tessel::test {

inline vk::context& shared_context() {
  static vk::context instance;
  return instance;
}

// Fails the current test if `ctx` recorded validation messages, then clears
// them so the next test starts clean.
inline void expect_no_validation_messages(vk::context& ctx) {
  const std::vector<std::string> messages = ctx.validation_messages();
  for (const std::string& m : messages) ADD_FAILURE() << "validation message: " << m;
  ctx.clear_validation_messages();
}

class device_test : public ::testing::Test {
 protected:
  vk::context& ctx() { return shared_context(); }
  void TearDown() override { expect_no_validation_messages(shared_context()); }
};

// A fresh seed per test, printed on failure through SCOPED_TRACE.
inline std::uint64_t test_seed() {
  static std::uint64_t counter = 0x7e55e1;
  return counter++;
}

inline std::vector<float> random_floats(std::mt19937_64& rng, std::size_t count, float low = -2,
                                        float high = 2) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> out(count);
  for (float& v : out) v = dist(rng);
  return out;
}

}  // namespace tessel::test
