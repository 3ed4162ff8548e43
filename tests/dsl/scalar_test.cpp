// Host conversions for f16 and bf16 against exact bit patterns and the
// round-to-nearest-even rule.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "tessel/dsl/fixed_string.hpp"
#include "tessel/dsl/scalar.hpp"

namespace {

TEST(Scalar, F16KnownValues) {
  EXPECT_EQ(tessel::to_f16(1.0f).bits, 0x3C00);
  EXPECT_EQ(tessel::to_f16(-2.0f).bits, 0xC000);
  EXPECT_EQ(tessel::to_f16(65504.0f).bits, 0x7BFF);
  EXPECT_EQ(tessel::to_f16(65520.0f).bits, 0x7C00);                // rounds up to infinity
  EXPECT_EQ(tessel::to_f16(5.960464477539063e-08f).bits, 0x0001);  // smallest subnormal
  EXPECT_EQ(tessel::to_f16(1.0f + 1.0f / 2048).bits, 0x3C00);      // tie to even
  EXPECT_EQ(tessel::to_f16(1.0f + 3.0f / 2048).bits, 0x3C02);      // tie to even (up)
  EXPECT_EQ(tessel::to_f16(std::numeric_limits<float>::infinity()).bits, 0x7C00);
  EXPECT_TRUE(std::isnan(tessel::to_float(tessel::to_f16(std::nanf("")))));
}

TEST(Scalar, F16RoundTripsEveryPattern) {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const tessel::f16 h{static_cast<std::uint16_t>(bits)};
    const float f = tessel::to_float(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(tessel::to_f16(f).bits, h.bits) << std::hex << bits;
  }
}

TEST(Scalar, F16RoundingIsNearest) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  for (int i = 0; i < 20000; ++i) {
    const float x = dist(rng);
    const tessel::f16 h = tessel::to_f16(x);
    const float y = tessel::to_float(h);
    if (std::isinf(y)) {
      EXPECT_GE(std::fabs(x), 65520.0f);
      continue;
    }
    // No other f16 value lies closer to x.
    const float up = tessel::to_float(tessel::f16{static_cast<std::uint16_t>(h.bits + 1)});
    const float down = tessel::to_float(tessel::f16{static_cast<std::uint16_t>(h.bits - 1)});
    EXPECT_LE(std::fabs(y - x), std::fabs(up - x)) << x;
    EXPECT_LE(std::fabs(y - x), std::fabs(down - x)) << x;
  }
}

TEST(Scalar, Bf16KnownValues) {
  EXPECT_EQ(tessel::to_bf16(1.0f).bits, 0x3F80);
  EXPECT_EQ(tessel::to_bf16(-std::numeric_limits<float>::infinity()).bits, 0xFF80);
  EXPECT_EQ(tessel::to_bf16(std::nanf("")).bits, 0x7FC0);
  // 1/16 * log2(e) = 0.0901684 rounds to 0.0903320 in bf16 (KERNELS.md 3.5).
  EXPECT_NEAR(tessel::to_float(tessel::to_bf16(0.0901684f)), 0.0903320f, 1e-7f);
  EXPECT_EQ(tessel::to_bf16(std::bit_cast<float>(0x3F808000u)).bits, 0x3F80);  // tie to even
  EXPECT_EQ(tessel::to_bf16(std::bit_cast<float>(0x3F818000u)).bits, 0x3F82);
}

TEST(Scalar, TraitsGiveGlslSpellingSizeAndExtensions) {
  EXPECT_EQ(tessel::scalar_traits<tessel::f16>::glsl, "float16_t");
  EXPECT_EQ(tessel::scalar_traits<tessel::bf16>::glsl, "uint16_t");
  EXPECT_EQ(tessel::scalar_traits<tessel::u8>::glsl, "uint8_t");
  EXPECT_EQ(tessel::scalar_traits<tessel::i64>::size, 8u);
  EXPECT_TRUE(
      tessel::has(tessel::scalar_traits<tessel::u8>::extensions, tessel::extension::storage_8bit));
  EXPECT_TRUE(tessel::has(tessel::features_for(tessel::scalar_traits<tessel::f16>::extensions),
                          tessel::feature::storage_16bit));
}

TEST(Names, NumbersGlueToTheirLabel) {
  static_assert(tessel::name("flash_attn_vec_f16", "d", 256, "nwg", 32).view() ==
                "flash_attn_vec_f16_d256_nwg32");
  EXPECT_EQ(tessel::name("x", -3).view(), "xm3");
}

}  // namespace
