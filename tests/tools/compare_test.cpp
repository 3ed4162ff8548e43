// The tolerance rule shared by `tessel run --check`, `tessel demo` and the
// tests: |got - ref| <= abs + rel * |ref|, non-finite results fail.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tessel/compare.hpp"

namespace {

using tessel::scalar_kind;
using tessel::tensor;

tensor f32s(std::vector<float> v) {
  return tensor::from<float>({v.size()}, std::span<const float>(v));
}

TEST(Compare, ExactMatchHasNoError) {
  const auto e = tessel::compare(f32s({1, -2, 0.5f}), {1, -2, 0.5}, 0, 0);
  EXPECT_EQ(e.max_abs, 0);
  EXPECT_EQ(e.max_rel, 0);
  EXPECT_EQ(e.out_of_bound, 0u);
  EXPECT_TRUE(tessel::within_tolerance(e));
}

TEST(Compare, AbsoluteAndRelativeErrors) {
  const auto e = tessel::compare(f32s({1.5f, 10.0f, 0.25f}), {1.0, 8.0, 0.0}, 0, 0);
  EXPECT_DOUBLE_EQ(e.max_abs, 2.0);
  EXPECT_DOUBLE_EQ(e.max_rel, 0.5);  // the zero reference is left out of max_rel
  EXPECT_EQ(e.out_of_bound, 3u);
}

TEST(Compare, ToleranceIsAbsPlusRelTimesReference) {
  // |10.5 - 10| = 0.5 <= 0.1 + 0.05 * 10 = 0.6; |0.3 - 0| = 0.3 > 0.1.
  auto e = tessel::compare(f32s({10.5f, 0.3f}), {10.0, 0.0}, 0.1, 0.05);
  EXPECT_EQ(e.out_of_bound, 1u);
  e = tessel::compare(f32s({10.5f, 0.05f}), {10.0, 0.0}, 0.1, 0.05);
  EXPECT_TRUE(tessel::within_tolerance(e));
}

TEST(Compare, NonFiniteResultsFail) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const auto e = tessel::compare(f32s({nan, inf, 1}), {1, 1, 1}, 1e9, 1e9);
  EXPECT_EQ(e.non_finite, 2u);
  EXPECT_EQ(e.out_of_bound, 2u);
  EXPECT_EQ(e.max_abs, 0);
  EXPECT_FALSE(tessel::within_tolerance(e));
}

TEST(Compare, NonFiniteReferenceMustMatchExactly) {
  const double inf = std::numeric_limits<double>::infinity();
  const float finf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(tessel::within_tolerance(tessel::compare(f32s({-finf}), {-inf}, 0, 0)));
  EXPECT_FALSE(tessel::within_tolerance(tessel::compare(f32s({finf}), {-inf}, 0, 0)));
  EXPECT_FALSE(tessel::within_tolerance(tessel::compare(f32s({1}), {inf}, 1e9, 1e9)));
}

TEST(Compare, HalfPrecisionResults) {
  const std::vector<tessel::f16> h = {tessel::to_f16(1.0f), tessel::to_f16(-3.0f)};
  auto e = tessel::compare(tensor::from<tessel::f16>({2}, std::span(h)), {1.0, -3.001}, 2e-3, 0);
  EXPECT_NEAR(e.max_abs, 1e-3, 1e-9);
  EXPECT_TRUE(tessel::within_tolerance(e));
  const std::vector<tessel::bf16> b = {tessel::to_bf16(1.0f), tessel::to_bf16(100.0f)};
  e = tessel::compare(tensor::from<tessel::bf16>({2}, std::span(b)), {1.0, 100.2}, 0, 1e-2);
  EXPECT_TRUE(tessel::within_tolerance(e));
  EXPECT_NEAR(e.max_rel, 0.2 / 100.2, 1e-9);
}

// Codes and indices: u8 and u32 results compare as exact integers.
TEST(Compare, IntegerResults) {
  const std::vector<std::uint8_t> bytes = {0, 17, 255};
  auto e = tessel::compare(tensor::from<std::uint8_t>({3}, std::span(bytes)), {0, 17, 255}, 0, 0);
  EXPECT_TRUE(tessel::within_tolerance(e));
  e = tessel::compare(tensor::from<std::uint8_t>({3}, std::span(bytes)), {0, 16, 255}, 1e-6, 1e-5);
  EXPECT_EQ(e.out_of_bound, 1u);
  const std::vector<std::uint32_t> words = {0xFFFFFFFFu};
  e = tessel::compare(tensor::from<std::uint32_t>({1}, std::span(words)), {4294967295.0}, 0, 0);
  EXPECT_TRUE(tessel::within_tolerance(e));
}

TEST(Compare, RejectsCountMismatchAndWideIntegerResults) {
  EXPECT_THROW(tessel::compare(f32s({1, 2}), {1}, 0, 0), tessel::error);
  EXPECT_THROW(tessel::compare(tensor::zeros(scalar_kind::u64, {1}), {0}, 0, 0), tessel::error);
}

}  // namespace
