#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fixture.hpp"
#include "tessel/vk.hpp"

namespace tessel::test {
namespace {

using buffer = device_test;

template <class T, class Make>
void expect_round_trip(vk::context& ctx, std::uint64_t count, Make make) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<T> values(count);
  for (T& v : values) v = make(rng);
  vk::buffer<T> b(ctx, count);
  EXPECT_EQ(b.size(), count);
  EXPECT_EQ(b.bytes(), count * sizeof(T));
  b.upload(values);
  const std::vector<T> back = b.download();
  ASSERT_EQ(back.size(), values.size());
  for (std::size_t i = 0; i < values.size(); ++i) ASSERT_TRUE(back[i] == values[i]) << "at " << i;
}

TEST_F(buffer, round_trips_f32_f16_u8_i64) {
  expect_round_trip<float>(ctx(), 1000, [](std::mt19937_64& rng) {
    return std::uniform_real_distribution<float>(-1e3f, 1e3f)(rng);
  });
  expect_round_trip<f16>(ctx(), 777, [](std::mt19937_64& rng) {
    return to_f16(std::uniform_real_distribution<float>(-60000.f, 60000.f)(rng));
  });
  expect_round_trip<std::uint8_t>(
      ctx(), 1001, [](std::mt19937_64& rng) { return static_cast<std::uint8_t>(rng()); });
  expect_round_trip<std::int64_t>(
      ctx(), 333, [](std::mt19937_64& rng) { return static_cast<std::int64_t>(rng()); });
}

TEST_F(buffer, raw_buffer_round_trips_bytes) {
  vk::raw_buffer b(ctx(), scalar_kind::u16, 5);
  EXPECT_EQ(b.bytes(), 10u);
  std::vector<std::byte> bytes(10);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::byte>(3 * i + 1);
  b.upload(bytes);
  EXPECT_EQ(b.download(), bytes);
  const vk::buffer_view view = b.view();
  EXPECT_EQ(view.buffer, b.handle());
  EXPECT_EQ(view.element, scalar_kind::u16);
  EXPECT_EQ(view.count, 5u);
  EXPECT_EQ(view.bytes, 10u);
  EXPECT_THROW(b.upload(std::vector<std::byte>(9)), tessel::error);
}

TEST_F(buffer, fill_sets_every_element) {
  vk::buffer<float> b(ctx(), 123);
  b.fill(std::numeric_limits<float>::quiet_NaN());
  for (float v : b.download()) ASSERT_TRUE(std::isnan(v));
  b.fill(2.5f);
  for (float v : b.download()) ASSERT_EQ(v, 2.5f);
  vk::buffer<std::uint8_t> bytes(ctx(), 7);
  bytes.fill(0xA5);
  EXPECT_EQ(bytes.download(), std::vector<std::uint8_t>(7, 0xA5));
}

TEST_F(buffer, moves_keep_contents) {
  vk::buffer<std::int32_t> a(ctx(), 4);
  const std::vector<std::int32_t> values = {1, -2, 3, -4};
  a.upload(values);
  vk::buffer<std::int32_t> b = std::move(a);
  EXPECT_EQ(b.download(), values);
}

TEST_F(buffer, rejects_zero_and_oversize_and_wrong_upload_count) {
  EXPECT_THROW(vk::buffer<float>(ctx(), 0), tessel::error);
  const std::uint64_t limit = ctx().device().max_storage_buffer_range;
  try {
    vk::buffer<float> b(ctx(), limit / sizeof(float) + 1);
    FAIL() << "an oversize buffer was created";
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("maxStorageBufferRange"), std::string::npos) << text;
    EXPECT_NE(text.find(std::to_string(limit)), std::string::npos) << text;
  }
  EXPECT_THROW(vk::buffer<std::int64_t>(ctx(), std::numeric_limits<std::uint64_t>::max()),
               tessel::error);
  vk::buffer<float> b(ctx(), 8);
  const std::vector<float> seven(7, 1.0f);
  EXPECT_THROW(b.upload(seven), tessel::error);
  // The context is still usable after the failures.
  const std::vector<float> eight(8, 3.0f);
  b.upload(eight);
  EXPECT_EQ(b.download(), eight);
}

}  // namespace
}  // namespace tessel::test
