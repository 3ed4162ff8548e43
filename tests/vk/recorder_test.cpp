#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fixture.hpp"
#include "tessel/vk.hpp"
#include "toy_kernels.hpp"

namespace tessel::test {
namespace {

using recorder = device_test;

constexpr float nan = std::numeric_limits<float>::quiet_NaN();

std::uint32_t groups_for(std::uint64_t count, std::uint32_t workgroup) {
  return static_cast<std::uint32_t>((count + workgroup - 1) / workgroup);
}

// f32 arithmetic on both sides: a * x + b rounds the same way up to FMA
// contraction, so 1e-6 relative is generous.
void expect_near_all(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-6 * (1 + std::abs(want[i]))) << "at " << i;
}

TEST_F(recorder, push_constant_kernel_matches_cpu) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::uint32_t n = 1000;
  const std::vector<float> x = random_floats(rng, n);
  const AxpbParams params{-1.25f, 0.5f, n};
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n);
  dx.upload(x);
  dy.fill(nan);
  vk::recorder rec(ctx());
  rec.dispatch<axpb>(params, {}, {groups_for(n, 64), 1, 1}, dx, dy);
  rec.submit_and_wait();
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = double(params.a) * x[i] + params.b;
  expect_near_all(dy.download(), want);
}

TEST_F(recorder, uniform_buffer_kernel_matches_cpu) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::uint32_t n = 301;
  const std::vector<float> x = random_floats(rng, n);
  PolyParams params{};
  const std::vector<float> c = random_floats(rng, 38);
  std::copy(c.begin(), c.end(), params.coefficients);
  params.n = n;
  params.bias = 0.75f;
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n);
  dx.upload(x);
  vk::recorder rec(ctx());
  // Two submissions from one recorder, the second with other parameters,
  // so the parameter memory is reused after the reset.
  for (float bias : {0.75f, -3.0f}) {
    params.bias = bias;
    dy.fill(nan);
    rec.dispatch<poly>(params, {}, {groups_for(n, ctx().target().subgroup_size), 1, 1}, dx, dy);
    rec.submit_and_wait();
    std::vector<double> want(n);
    for (std::size_t i = 0; i < n; ++i)
      want[i] = double(params.coefficients[i % 38]) * x[i] + params.bias;
    expect_near_all(dy.download(), want);
  }
}

TEST_F(recorder, many_uniform_buffer_dispatches_in_one_submission) {
  const std::uint32_t n = 16;
  vk::buffer<float> dx(ctx(), n);
  const std::vector<float> ones(n, 1.0f);
  dx.upload(ones);
  std::vector<vk::buffer<float>> outputs;
  for (int i = 0; i < 70; ++i) outputs.emplace_back(ctx(), n);  // more sets than one pool holds
  vk::recorder rec(ctx());
  PolyParams params{};
  params.n = n;
  for (int i = 0; i < 70; ++i) {
    params.bias = static_cast<float>(i);
    rec.dispatch<poly>(params, {}, {groups_for(n, ctx().target().subgroup_size), 1, 1}, dx,
                       outputs[i]);
  }
  rec.submit_and_wait();
  for (int i = 0; i < 70; ++i)
    EXPECT_EQ(outputs[i].download(), std::vector<float>(n, static_cast<float>(i))) << i;
}

TEST_F(recorder, dependent_dispatches_see_each_others_writes) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const std::uint32_t n = 4096;
  const std::vector<float> x = random_floats(rng, n);
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n), dz(ctx(), n);
  dx.upload(x);
  dy.fill(nan);
  dz.fill(nan);
  vk::recorder rec(ctx());
  const AxpbParams first{3.0f, -1.0f, n}, second{0.5f, 2.0f, n};
  rec.dispatch<axpb>(first, {}, {groups_for(n, 64), 1, 1}, dx, dy);
  rec.dispatch<axpb>(second, {}, {groups_for(n, 64), 1, 1}, dy, dz);
  EXPECT_EQ(rec.dispatch_count(), 2u);
  rec.submit_and_wait();
  EXPECT_EQ(rec.dispatch_count(), 0u);
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float y = first.a * x[i] + first.b;
    want[i] = double(second.a) * y + second.b;
  }
  expect_near_all(dz.download(), want);
}

TEST_F(recorder, spec_constants_change_the_result) {
  const std::uint32_t n = 100;
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n);
  const std::vector<float> ones(n, 1.0f);
  dx.upload(ones);
  vk::recorder rec(ctx());
  const AxpbParams params{2.0f, 1.0f, n};
  rec.dispatch<axpb>(params, {}, {groups_for(n, 64), 1, 1}, dx, dy);
  rec.submit_and_wait();
  EXPECT_EQ(dy.download(), std::vector<float>(n, 3.0f));
  const std::array<vk::spec_value, 1> factor{{{3, 4}}};
  rec.dispatch<axpb>(params, factor, {groups_for(n, 64), 1, 1}, dx, dy);
  rec.submit_and_wait();
  EXPECT_EQ(dy.download(), std::vector<float>(n, 12.0f));
}

TEST_F(recorder, kernel_without_params_reads_f16) {
  const std::uint32_t n = 50;
  std::vector<f16> src(n);
  std::vector<float> want(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    src[i] = to_f16(0.25f * static_cast<float>(i) - 3.0f);
    want[i] = to_float(src[i]);
  }
  vk::buffer<f16> dsrc(ctx(), n);
  vk::buffer<float> ddst(ctx(), n);
  dsrc.upload(src);
  ddst.fill(nan);
  vk::recorder rec(ctx());
  rec.dispatch<widen_f16>({}, {groups_for(n, ctx().target().subgroup_size), 1, 1}, dsrc, ddst);
  rec.submit_and_wait();
  EXPECT_EQ(ddst.download(), want);
}

TEST_F(recorder, null_buffer_binds_an_unused_binding) {
  const std::uint32_t n = 40;
  std::vector<float> x(n), plus_bias(n);
  std::vector<f16> bias(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i);
    bias[i] = to_f16(0.5f);
    plus_bias[i] = x[i] + 0.5f;
  }
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n);
  vk::buffer<f16> dbias(ctx(), n);
  dx.upload(x);
  dbias.upload(bias);
  const extent3 groups{groups_for(n, ctx().target().subgroup_size), 1, 1};
  vk::recorder rec(ctx());
  const vk::buffer<f16>* none = nullptr;
  dy.fill(nan);
  rec.dispatch<maybe_biased>({}, groups, dx, none, dy);
  rec.submit_and_wait();
  EXPECT_EQ(dy.download(), x);
  const vk::spec_value with_bias[] = {{0, 1}};
  rec.dispatch<maybe_biased>(with_bias, groups, dx, &dbias, dy);
  rec.submit_and_wait();
  EXPECT_EQ(dy.download(), plus_bias);
  const vk::buffer_view unused = rec.unused_binding(scalar_kind::u8);
  EXPECT_EQ(unused.element, scalar_kind::u8);
  EXPECT_EQ(unused.count, unused.bytes);
}

TEST_F(recorder, bad_arguments_throw_and_record_nothing) {
  const variant_info& v = info<axpb>();
  vk::buffer<float> x(ctx(), 8), y(ctx(), 8);
  vk::buffer<std::int32_t> wrong(ctx(), 8);
  const AxpbParams params{1.0f, 0.0f, 8};
  const auto bytes = std::as_bytes(std::span<const AxpbParams, 1>(&params, 1));
  vk::recorder rec(ctx());
  const auto expect_error = [&](std::span<const vk::buffer_view> views,
                                std::span<const std::byte> block, extent3 groups,
                                std::string_view needle) {
    try {
      rec.dispatch(v, {}, views, block, groups);
      ADD_FAILURE() << "accepted; expected an error mentioning " << needle;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(e.operation(), "test_axpb");
    }
  };
  const std::array<vk::buffer_view, 1> one{x.view()};
  const std::array<vk::buffer_view, 2> good{x.view(), y.view()};
  const std::array<vk::buffer_view, 2> mistyped{x.view(), wrong.view()};
  const std::array<vk::buffer_view, 3> three{x.view(), y.view(), y.view()};
  expect_error(one, bytes, {1, 1, 1}, "buffer count");
  expect_error(three, bytes, {1, 1, 1}, "buffer count");
  expect_error(mistyped, bytes, {1, 1, 1}, "'y'");
  expect_error(good, bytes.first(8), {1, 1, 1}, "parameter block bytes");
  expect_error(good, {}, {1, 1, 1}, "parameter block bytes");
  expect_error(good, bytes, {0, 1, 1}, "groups.x");
  expect_error(good, bytes, {1, ctx().device().max_workgroup_count[1] + 1, 1}, "groups.y");
  EXPECT_EQ(rec.dispatch_count(), 0u);
  // Nothing was recorded, so an empty submission is fine and the recorder works after.
  rec.submit_and_wait();
  rec.dispatch(v, {}, good, bytes, {1, 1, 1});
  rec.submit_and_wait();
}

TEST_F(recorder, timestamps_measure_nonnegative_time) {
  if (!ctx().device().timestamps) GTEST_SKIP() << "no timestamps on this queue";
  const std::uint32_t n = 2048;
  vk::buffer<float> dx(ctx(), n), dy(ctx(), n);
  dx.fill(1.0f);
  vk::recorder rec(ctx());
  const std::uint32_t begin = rec.timestamp();
  rec.dispatch<axpb>(AxpbParams{1.0f, 1.0f, n}, {}, {groups_for(n, 64), 1, 1}, dx, dy);
  const std::uint32_t end = rec.timestamp();
  rec.submit_and_wait();
  const double ms = rec.elapsed_ms(begin, end);
  EXPECT_GE(ms, 0.0);
  EXPECT_TRUE(std::isfinite(ms));
  EXPECT_THROW(static_cast<void>(rec.elapsed_ms(begin, end + 1)), tessel::error);
}

}  // namespace
}  // namespace tessel::test
