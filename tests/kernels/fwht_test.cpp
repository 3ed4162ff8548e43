// The Hadamard rotations on the device against the double-precision
// reference, the sign table of KERNELS.md 12.1, and the op's validation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tessel/kernels/fwht.hpp"
#include "tessel/reference/fwht.hpp"
#include "vk/fixture.hpp"

namespace {

using tessel::kernels::hadamard_mode;

class Fwht : public tessel::test::device_test {
 protected:
  std::vector<float> run(std::vector<float> data, std::uint32_t heads, std::uint32_t dim,
                         std::initializer_list<hadamard_mode> modes) {
    tessel::vk::buffer<float> buffer(ctx(), data.size());
    buffer.upload(data);
    tessel::vk::recorder rec(ctx());
    for (hadamard_mode m : modes) tessel::kernels::record_fwht(rec, buffer, heads, dim, m);
    rec.submit_and_wait();
    return buffer.download();
  }
};

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << "element " << i;
}

TEST_F(Fwht, MatchesReferenceForEveryHeadDimModeAndRaggedRowCount) {
  for (std::uint32_t dim : {64u, 128u, 256u, 512u})
    for (std::uint32_t heads : {1u, 7u, 33u})
      for (hadamard_mode mode :
           {hadamard_mode::plain, hadamard_mode::rotate, hadamard_mode::unrotate}) {
        const std::uint64_t seed = tessel::test::test_seed();
        SCOPED_TRACE("seed " + std::to_string(seed) + " D=" + std::to_string(dim) +
                     " H=" + std::to_string(heads) + " mode " + std::string(mode_name(mode)));
        std::mt19937_64 rng(seed);
        const auto data = tessel::test::random_floats(rng, std::size_t{heads} * dim);
        expect_close(run(data, heads, dim, {mode}), tessel::reference::fwht(data, heads, dim, mode),
                     1e-5);
      }
}

TEST_F(Fwht, OnesTransformToASpike) {
  const auto out = run(std::vector<float>(128, 1.0f), 1, 128, {hadamard_mode::plain});
  EXPECT_NEAR(out[0], std::sqrt(128.0), 1e-5);
  for (std::size_t i = 1; i < out.size(); ++i) EXPECT_NEAR(out[i], 0.0, 1e-6) << i;
}

// H is its own inverse, so plain(rotate(x)) = s * x: the device's sign table
// shows through. KERNELS.md: byte 0 = 0xa7 gives signs - - - + + - + -.
TEST_F(Fwht, DeviceSignsFollowTheDocumentedTable) {
  std::vector<float> ones(512, 1.0f);
  const auto signs = run(ones, 1, 512, {hadamard_mode::rotate, hadamard_mode::plain});
  const float first_byte[8] = {-1, -1, -1, 1, 1, -1, 1, -1};
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(signs[j], first_byte[j], 1e-5) << j;
  for (std::uint32_t j = 0; j < 512; ++j)
    EXPECT_NEAR(signs[j], tessel::reference::hadamard_sign(j), 1e-5) << j;
  // The 512 table begins with the 256 one, byte 32 = 0xd3 = 1101 0011b.
  EXPECT_NEAR(signs[256], -1.0f, 1e-5);
  EXPECT_NEAR(signs[258], 1.0f, 1e-5);
}

TEST_F(Fwht, UnrotateUndoesRotateAndPreservesEnergy) {
  std::mt19937_64 rng(tessel::test::test_seed());
  const auto data = tessel::test::random_floats(rng, 5 * 256);
  const auto rotated = run(data, 5, 256, {hadamard_mode::rotate});
  double before = 0, after = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    before += double{data[i]} * data[i];
    after += double{rotated[i]} * rotated[i];
  }
  EXPECT_NEAR(after / before, 1.0, 1e-5);
  const auto back = run(data, 5, 256, {hadamard_mode::rotate, hadamard_mode::unrotate});
  for (std::size_t i = 0; i < data.size(); ++i) ASSERT_NEAR(back[i], data[i], 2e-6) << i;
}

// More rows than one grid dimension holds: rows continue along y.
TEST_F(Fwht, RowsBeyondTheGridLimitAreTransformed) {
  const std::uint32_t heads = tessel::max_grid_x + 3;
  std::mt19937_64 rng(tessel::test::test_seed());
  const auto data = tessel::test::random_floats(rng, std::size_t{heads} * 64);
  const auto got = run(data, heads, 64, {hadamard_mode::rotate});
  const auto want = tessel::reference::fwht(data, heads, 64, hadamard_mode::rotate);
  for (std::size_t i = (std::size_t{heads} - 5) * 64; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << i;
  ASSERT_NEAR(got[0], want[0], 1e-5 * (1 + std::fabs(want[0])));
}

TEST_F(Fwht, BadArgumentsAreRejectedBeforeRecording) {
  tessel::vk::buffer<float> buffer(ctx(), 4 * 128);
  tessel::vk::recorder rec(ctx());
  auto expect_error = [&](std::uint32_t heads, std::uint32_t dim, hadamard_mode mode,
                          const std::string& fragment) {
    try {
      tessel::kernels::record_fwht(rec, buffer, heads, dim, mode);
      ADD_FAILURE() << "accepted " << fragment;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error(4, 100, hadamard_mode::plain, "head_dim = 100 must be 64, 128, 256 or 512");
  expect_error(0, 128, hadamard_mode::plain, "num_heads = 0 must be > 0");
  expect_error(3, 128, hadamard_mode::plain, "data element count = 512 must equal 384");
  expect_error(4, 128, static_cast<hadamard_mode>(3), "mode = 3");
  EXPECT_EQ(rec.dispatch_count(), 0u);
}

}  // namespace
