// The decode reduce, alone and fused with the inverse rotation, against
// attention computed directly: the partials are produced on the host by
// splitting a real softmax-attention problem into NWG slices, so the test
// checks the layout contract, not only the formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <random>
#include <span>

#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/reference/decode_reduce.hpp"
#include "tessel/reference/fwht.hpp"
#include "vk/fixture.hpp"

namespace {

struct attention_problem {
  std::uint32_t nrows, head_dim, kv_len, nwg;
  std::vector<float> partials;   // the NWG-way split, as a decode kernel writes it
  std::vector<double> expected;  // softmax(q k^T) v in double
};

// Slices of the key range go to workgroups w = 0..nwg-1 (contiguous, some
// possibly empty); `masked_row` has no attended key at all.
attention_problem make_problem(std::uint32_t nrows, std::uint32_t head_dim, std::uint32_t kv_len,
                               std::uint32_t nwg, std::uint64_t seed, int masked_row) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  attention_problem p{nrows, head_dim, kv_len, nwg, {}, {}};
  p.partials.assign(tessel::kernels::decode_partials_size(nrows, head_dim, nwg), 0.0f);
  p.expected.assign(std::size_t{nrows} * head_dim, 0.0);
  const std::size_t stats = std::size_t{nrows} * head_dim * nwg;
  for (std::uint32_t r = 0; r < nrows; ++r) {
    std::vector<double> scores(kv_len);
    std::vector<std::vector<double>> values(kv_len, std::vector<double>(head_dim));
    for (auto& s : scores) s = 3 * normal(rng);
    for (auto& v : values)
      for (auto& x : v) x = normal(rng);
    const bool masked = static_cast<int>(r) == masked_row;
    const double global_max = *std::max_element(scores.begin(), scores.end());
    double denominator = 0;
    for (std::uint32_t j = 0; j < kv_len && !masked; ++j) {
      const double weight = std::exp(scores[j] - global_max);
      denominator += weight;
      for (std::uint32_t d = 0; d < head_dim; ++d)
        p.expected[r * head_dim + d] += weight * values[j][d];
    }
    if (!masked)
      for (std::uint32_t d = 0; d < head_dim; ++d) p.expected[r * head_dim + d] /= denominator;
    const std::uint32_t per_slice = (kv_len + nwg - 1) / nwg;
    for (std::uint32_t w = 0; w < nwg; ++w) {
      const std::uint32_t begin = std::min(kv_len, w * per_slice);
      const std::uint32_t end = std::min(kv_len, begin + per_slice);
      double slice_max = -1.7014117331926443e38, sum = 0;
      for (std::uint32_t j = begin; j < end && !masked; ++j)
        slice_max = std::max(slice_max, scores[j]);
      std::vector<double> o(head_dim, 0.0);
      for (std::uint32_t j = begin; j < end && !masked; ++j) {
        const double weight = std::exp(scores[j] - slice_max);
        sum += weight;
        for (std::uint32_t d = 0; d < head_dim; ++d) o[d] += weight * values[j][d];
      }
      for (std::uint32_t d = 0; d < head_dim; ++d)
        p.partials[4 * (std::size_t{r} * (head_dim / 4) * nwg + std::size_t{nwg} * (d / 4) + w) +
                   d % 4] = static_cast<float>(o[d]);
      p.partials[stats + 2 * (std::size_t{r} * nwg + w)] = static_cast<float>(sum);
      p.partials[stats + 2 * (std::size_t{r} * nwg + w) + 1] = static_cast<float>(slice_max);
    }
  }
  return p;
}

// How the partials are turned into rows: the reduce, the reduce then the
// fwht op's unrotate in a second dispatch, or the fused kernel.
enum class merge { reduce, reduce_then_unrotate, fused_unrotate };

class DecodeReduce : public tessel::test::device_test {
 protected:
  std::vector<float> run(const attention_problem& p, merge how = merge::reduce) {
    tessel::vk::buffer<float> partials(ctx(), p.partials.size());
    partials.upload(p.partials);
    tessel::vk::buffer<float> dst(ctx(), std::uint64_t{p.nrows} * p.head_dim);
    dst.fill(std::nanf(""));
    tessel::vk::recorder rec(ctx());
    if (how == merge::fused_unrotate) {
      tessel::kernels::record_decode_reduce_unrotate(rec, partials, dst, p.nrows, p.head_dim,
                                                     p.nwg);
    } else {
      tessel::kernels::record_decode_reduce(rec, partials, dst, p.nrows, p.head_dim, p.nwg);
      if (how == merge::reduce_then_unrotate)
        tessel::kernels::record_fwht(rec, dst, p.nrows, p.head_dim,
                                     tessel::kernels::hadamard_mode::unrotate);
    }
    rec.submit_and_wait();
    return dst.download();
  }
};

TEST_F(DecodeReduce, EqualsUnsplitAttentionForRaggedSplits) {
  struct shape {
    std::uint32_t nrows, head_dim, kv_len, nwg;
  };
  // kv_len 1 with nwg 5 leaves four empty slices; 33 keys over 32 slices
  // leave a one-key tail; 1000 over 7 is ragged; 200 and 256 slices are more
  // than a workgroup's invocations, 200 not a multiple of the 8 lanes that
  // share an output chunk.
  for (const shape s : {shape{4, 64, 1, 5},
                        {3, 128, 33, 32},
                        {8, 256, 1000, 7},
                        {2, 512, 129, 64},
                        {5, 256, 77, 1},
                        {3, 128, 1000, 200},
                        {2, 512, 600, 256}}) {
    const std::uint64_t seed = tessel::test::test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " rows=" + std::to_string(s.nrows) +
                 " D=" + std::to_string(s.head_dim) + " kv=" + std::to_string(s.kv_len) +
                 " nwg=" + std::to_string(s.nwg));
    const auto p = make_problem(s.nrows, s.head_dim, s.kv_len, s.nwg, seed, -1);
    const auto got = run(p);
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], p.expected[i], 1e-5 * (1 + std::fabs(p.expected[i]))) << "element " << i;
  }
}

// More rows than one grid dimension holds: rows continue along y, and the
// last rows (and the first) are merged like the rest.
TEST_F(DecodeReduce, RowsBeyondTheGridLimitAreMerged) {
  const std::uint32_t nrows = tessel::max_grid_x + 3;
  const auto p = make_problem(nrows, 64, 3, 2, tessel::test::test_seed(), -1);
  const auto got = run(p);
  const auto want = tessel::reference::decode_reduce(p.partials, nrows, 64, 2);
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << "element " << i;
}

TEST_F(DecodeReduce, FullyMaskedRowsAreExactZeros) {
  const auto p = make_problem(3, 128, 40, 4, tessel::test::test_seed(), 1);
  const auto got = run(p);
  for (std::uint32_t d = 0; d < 128; ++d) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(got[128 + d]), 0u) << d;
    EXPECT_TRUE(std::isfinite(got[d]) && std::isfinite(got[256 + d]));
  }
}

// The fused kernel against R^-1 of the unsplit attention, and against the
// two dispatches it replaces (KERNELS.md 11.3: measured byte-identical
// upstream). Both paths run the same f32 operations in the same order, so
// they agree to rounding; the number of bit-identical elements is recorded.
TEST_F(DecodeReduce, FusedUnrotateEqualsReduceThenUnrotate) {
  struct shape {
    std::uint32_t nrows, head_dim, kv_len, nwg;
  };
  std::size_t identical = 0, total = 0;
  for (const shape s : {shape{4, 64, 1, 5},
                        {3, 128, 33, 32},
                        {8, 256, 1000, 16},
                        {2, 512, 129, 3},
                        {5, 256, 77, 1}}) {
    const std::uint64_t seed = tessel::test::test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " rows=" + std::to_string(s.nrows) +
                 " D=" + std::to_string(s.head_dim) + " kv=" + std::to_string(s.kv_len) +
                 " nwg=" + std::to_string(s.nwg));
    const auto p = make_problem(s.nrows, s.head_dim, s.kv_len, s.nwg, seed, 1);
    const auto fused = run(p, merge::fused_unrotate);
    const auto two_dispatches = run(p, merge::reduce_then_unrotate);
    std::vector<double> want = p.expected;
    for (std::uint32_t r = 0; r < s.nrows; ++r)
      tessel::reference::unrotate_row(std::span(want).subspan(r * s.head_dim, s.head_dim));
    for (std::size_t i = 0; i < fused.size(); ++i) {
      ASSERT_NEAR(fused[i], want[i], 1e-5 * (1 + std::fabs(want[i]))) << "element " << i;
      ASSERT_NEAR(fused[i], two_dispatches[i], 1e-6 * (1 + std::fabs(want[i]))) << "element " << i;
      identical +=
          std::bit_cast<std::uint32_t>(fused[i]) == std::bit_cast<std::uint32_t>(two_dispatches[i]);
      ++total;
    }
    // Row 1 attends nothing: zeros (signed by the sign pattern).
    for (std::uint32_t d = 0; d < s.head_dim; ++d) ASSERT_EQ(fused[s.head_dim + d], 0.0f) << d;
  }
  RecordProperty("bit_identical", std::to_string(identical) + " of " + std::to_string(total));
}

TEST_F(DecodeReduce, BadArgumentsAreRejectedBeforeRecording) {
  tessel::vk::buffer<float> partials(ctx(), tessel::kernels::decode_partials_size(2, 64, 4));
  tessel::vk::buffer<float> dst(ctx(), 2 * 64);
  tessel::vk::recorder rec(ctx());
  auto expect_error = [&](std::uint32_t nrows, std::uint32_t dim, std::uint32_t nwg,
                          const std::string& fragment) {
    try {
      tessel::kernels::record_decode_reduce(rec, partials, dst, nrows, dim, nwg);
      ADD_FAILURE() << "accepted " << fragment;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error(2, 64, 0, "nwg = 0 must be in [1, 256]");
  expect_error(2, 64, 257, "nwg = 257 must be in [1, 256]");
  expect_error(2, 64, 5, "partials element count = 528 must be >= 660");
  expect_error(2, 96, 4, "head_dim = 96");
  expect_error(3, 64, 4, "partials element count");
  try {
    tessel::kernels::record_decode_reduce_unrotate(rec, partials, dst, 2, 64, 0);
    ADD_FAILURE() << "accepted nwg = 0";
  } catch (const tessel::error& e) {
    EXPECT_NE(std::string(e.what()).find("decode_reduce_unrotate: nwg = 0 must be in [1, 256]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(tessel::kernels::record_decode_reduce_unrotate(rec, partials, dst, 2, 96, 4),
               tessel::error);
  EXPECT_THROW(tessel::kernels::record_decode_reduce_unrotate_for<64>(rec, partials, dst, 2, 5),
               tessel::error);
  EXPECT_EQ(rec.dispatch_count(), 0u);
}

}  // namespace
