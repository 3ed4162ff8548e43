// The GEMM ceiling's host op (tessel/bench/coopmat_gemm.hpp) rejects bad
// arguments with an error naming the argument and the rule, and a device
// without cooperative matrices (lavapipe), before anything is recorded. Its
// results are checked against a double GEMM on the GPU (bench/prefill_check
// --ceiling); lavapipe cannot run it.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "tessel/bench/coopmat_gemm.hpp"

namespace {

using namespace tessel;

class coopmat_gemm : public test::device_test {};

void expect_error(const std::string& fragment, const std::function<void()>& call) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one containing: " << fragment;
  } catch (const error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST_F(coopmat_gemm, bad_arguments_are_errors_and_nothing_is_recorded) {
  constexpr bench::coopmat_gemm_tiles t = bench::coopmat_gemm_default_tiles;
  const std::uint32_t m = t.rows, n = t.cols, k = t.depth;
  vk::buffer<f16> a(ctx(), std::size_t{m} * k), b(ctx(), std::size_t{k} * n);
  vk::buffer<float> c(ctx(), std::size_t{m} * n);
  c.fill(std::numeric_limits<float>::quiet_NaN());
  vk::recorder rec(ctx());
  expect_error("m = 129 must be a positive multiple of the tile's 128",
               [&] { bench::record_coopmat_gemm(rec, m + 1, n, k, a, b, c); });
  expect_error("n = 0 must be a positive multiple of the tile's 256",
               [&] { bench::record_coopmat_gemm(rec, m, 0, k, a, b, c); });
  expect_error("k = 48 must be a positive multiple of the tile's 32",
               [&] { bench::record_coopmat_gemm(rec, m, n, k + 16, a, b, c); });
  expect_error("A element count = 4096 must equal 8192",
               [&] { bench::record_coopmat_gemm(rec, 2 * m, n, k, a, b, c); });
  if (!bench::coopmat_gemm_supported(ctx().device()))
    expect_error("device = ", [&] { bench::record_coopmat_gemm(rec, m, n, k, a, b, c); });
  EXPECT_EQ(rec.dispatch_count(), 0u);
  for (float x : c.download()) ASSERT_TRUE(std::isnan(x));
}

}  // namespace
