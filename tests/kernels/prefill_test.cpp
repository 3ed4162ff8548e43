// The prefill and its tile classifier on the device against the double
// reference: ragged shapes, both layouts, GQA, every mask kind and rank,
// causal masking with offsets, K/V caches larger than key_len, fully masked
// rows, bit-identical output with and without tile classes, and validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/reference/prefill.hpp"
#include "vk/fixture.hpp"

namespace {

using tessel::bf16;
using tessel::f16;
using tessel::u8;
using tessel::kernels::attention_layout;
using tessel::kernels::prefill_problem;
namespace vk = tessel::vk;
namespace kernels = tessel::kernels;

constexpr float inf = std::numeric_limits<float>::infinity();

enum class mask_kind { none, additive, boolean };

template <class T>
T round_to(float x) {
  if constexpr (std::is_same_v<T, f16>)
    return tessel::to_f16(x);
  else
    return tessel::to_bf16(x);
}

template <class T>
constexpr T nan_of() {
  if constexpr (std::is_same_v<T, f16>)
    return f16{0x7E00};
  else
    return bf16{0x7FC0};
}

// A mask as the test builds it: one bias per cell (0 attends, -inf blocks,
// anything else is an additive bias), in the layout p.mask_rank says.
using bias_plane = std::vector<float>;

// Random biases: `blocked` of the cells are -inf; of the rest, `plain` are 0
// and the others uniform in [-3, 3] (boolean masks use only 0 and -inf).
// Rows in `empty_rows` are blocked entirely in the planes `empty_planes`
// says (every plane when it is empty).
struct random_mask {
  double blocked = 0.25;
  double plain = 0.3;
  std::vector<std::uint32_t> empty_rows;
  std::vector<std::uint32_t> empty_planes;
};

bias_plane make_biases(const prefill_problem& p, mask_kind kind, const random_mask& spec,
                       std::mt19937_64& rng) {
  const std::uint64_t planes = p.mask_rank == 4 ? std::uint64_t{p.batch} * p.num_heads : 1;
  bias_plane biases(planes * p.query_len * p.key_len);
  std::uniform_real_distribution<double> unit(0, 1);
  std::uniform_real_distribution<float> bias(-3, 3);
  for (float& b : biases) {
    if (unit(rng) < spec.blocked)
      b = -inf;
    else if (kind == mask_kind::boolean || unit(rng) < spec.plain)
      b = 0;
    else
      b = bias(rng);
  }
  for (std::uint64_t plane = 0; plane < planes; ++plane) {
    const bool chosen = spec.empty_planes.empty() ||
                        std::find(spec.empty_planes.begin(), spec.empty_planes.end(), plane) !=
                            spec.empty_planes.end();
    if (!chosen) continue;
    for (std::uint32_t row : spec.empty_rows)
      for (std::uint32_t j = 0; j < p.key_len; ++j)
        biases[(plane * p.query_len + row) * p.key_len + j] = -inf;
  }
  return biases;
}

// Sliding-window causal attention as a rank-2 mask: row i (at absolute
// position query_offset + i) sees the `window` most recent keys.
bias_plane window_biases(const prefill_problem& p, std::uint32_t window) {
  bias_plane biases(std::uint64_t{p.query_len} * p.key_len);
  for (std::uint32_t i = 0; i < p.query_len; ++i)
    for (std::uint32_t j = 0; j < p.key_len; ++j) {
      const std::int64_t position = std::int64_t{p.query_offset} + i;
      biases[std::uint64_t{i} * p.key_len + j] = j <= position && position - j < window ? 0 : -inf;
    }
  return biases;
}

template <class T>
struct prefill_inputs {
  prefill_problem problem;
  mask_kind kind = mask_kind::none;
  std::vector<T> q, k, v;
  bias_plane biases;  // the mask as the reference reads it; empty without a mask

  std::vector<T> additive() const {
    std::vector<T> out(biases.size());
    for (std::size_t i = 0; i < biases.size(); ++i) out[i] = round_to<T>(biases[i]);
    return out;
  }
  std::vector<u8> boolean() const {
    std::vector<u8> out(biases.size());
    for (std::size_t i = 0; i < biases.size(); ++i) out[i] = biases[i] == 0 ? 1 : 0;
    return out;
  }
};

// Random Q, K, V in [-1, 1], rounded to T, as are the biases; K and V positions at or past
// key_len (kv_capacity > key_len) hold NaN, which the kernel must never read.
template <class T>
prefill_inputs<T> make_inputs(const prefill_problem& p, mask_kind kind, bias_plane biases,
                              std::mt19937_64& rng) {
  prefill_inputs<T> in{p, kind, {}, {}, {}, std::move(biases)};
  // The reference sees the biases the kernel reads: rounded to T.
  for (float& b : in.biases) b = tessel::to_float(round_to<T>(b));
  const kernels::prefill_sizes sizes = kernels::prefill_sizes_of(p);
  std::uniform_real_distribution<float> unit(-1, 1);
  auto fill = [&](std::vector<T>& x, std::uint64_t n) {
    x.resize(n);
    for (T& e : x) e = round_to<T>(unit(rng));
  };
  fill(in.q, sizes.q);
  fill(in.k, sizes.k);
  fill(in.v, sizes.v);
  const kernels::PrefillParams s = kernels::prefill_params(p);
  for (std::uint32_t b = 0; b < p.batch; ++b)
    for (std::uint32_t h = 0; h < p.num_kv_heads; ++h)
      for (std::uint32_t j = p.key_len; j < p.capacity(); ++j)
        for (std::uint32_t d = 0; d < p.head_dim; ++d) {
          const std::size_t at = b * s.k_strides[0] + h * s.k_strides[1] + j * s.k_strides[2] + d;
          in.k[at] = in.v[at] = nan_of<T>();
        }
  return in;
}

// Half an ulp of T relative (the one rounding of the output) plus 1e-5 for
// the f32 path before it: dot products, exp2 and sums stay within ~1e-6 of
// the exact result for inputs in [-1, 1] and biases in [-3, 3].
template <class T>
constexpr double relative_tolerance() {
  return std::is_same_v<T, f16> ? 1.0 / 2048 : 1.0 / 256;
}
constexpr double absolute_tolerance = 1e-5;

template <class T>
std::uint16_t bits_of(T x) {
  return x.bits;
}

class Prefill : public tessel::test::device_test {
 protected:
  // Runs the prefill (through the tile classes when `with_blk`) with the
  // output poisoned with NaN, and returns the output.
  template <class T>
  std::vector<T> run(const prefill_inputs<T>& in, bool with_blk = false) {
    const prefill_problem& p = in.problem;
    vk::buffer<T> q(ctx(), in.q.size()), k(ctx(), in.k.size()), v(ctx(), in.v.size()),
        o(ctx(), in.q.size());
    q.upload(in.q);
    k.upload(in.k);
    v.upload(in.v);
    o.fill(nan_of<T>());
    vk::recorder rec(ctx());
    // Records and submits while the mask and its classes live.
    const auto with_mask = [&](const auto& host_mask) {
      using M = typename std::decay_t<decltype(host_mask)>::value_type;
      vk::buffer<M> mask(ctx(), host_mask.size());
      mask.upload(host_mask);
      std::optional<vk::buffer<u8>> blk;
      if (with_blk) {
        blk.emplace(ctx(), kernels::prefill_sizes_of(p).blk);
        blk->fill(0xEE);
        kernels::record_prefill_blk(rec, p, mask, *blk);
      }
      kernels::record_prefill(rec, p, q, k, v, o, mask, blk ? &*blk : nullptr);
      rec.submit_and_wait();
    };
    if (in.kind == mask_kind::additive) {
      with_mask(in.additive());
    } else if (in.kind == mask_kind::boolean) {
      with_mask(in.boolean());
    } else {
      kernels::record_prefill(rec, p, q, k, v, o);
      rec.submit_and_wait();
    }
    return o.download();
  }

  // Every element written, finite and within tolerance of the reference;
  // rows that attend no key are exactly +0.
  template <class T>
  void expect_matches_reference(const prefill_inputs<T>& in, const std::vector<T>& got) {
    const prefill_problem& p = in.problem;
    const std::vector<double> want = tessel::reference::prefill(
        p, tessel::reference::widen<T>(in.q), tessel::reference::widen<T>(in.k),
        tessel::reference::widen<T>(in.v), in.biases);
    ASSERT_EQ(got.size(), want.size());
    // record_prefill takes the matrix kernel where the device has it; its
    // f16 probabilities add their documented bound.
    double absolute = absolute_tolerance;
    if (kernels::resolve_prefill_path(kernels::prefill_path::automatic, ctx().target(),
                                      p.head_dim) == kernels::prefill_path::coopmat) {
      double max_v = 0;
      for (const T x : in.v) max_v = std::max(max_v, std::abs(double(tessel::to_float(x))));
      absolute += kernels::prefill_coopmat_probability_error(max_v);
    }
    std::size_t bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double g = tessel::to_float(got[i]);
      const double err = std::abs(g - want[i]);
      worst = std::max(worst, std::isfinite(g) ? err : inf);
      if (!(err <= absolute + relative_tolerance<T>() * std::abs(want[i])) && bad++ < 5)
        ADD_FAILURE() << "element " << i << ": got " << g << ", want " << want[i];
    }
    EXPECT_EQ(bad, 0u) << "max error " << worst;
    // Rows of exact zeros in the reference attend nothing: the kernel's must
    // be +0 bit for bit.
    for (std::size_t row = 0; row < want.size() / p.head_dim; ++row) {
      bool zero = true;
      for (std::size_t d = 0; d < p.head_dim; ++d) zero = zero && want[row * p.head_dim + d] == 0;
      if (!zero) continue;
      for (std::size_t d = 0; d < p.head_dim; ++d)
        ASSERT_EQ(bits_of(got[row * p.head_dim + d]), 0u) << "fully masked row " << row;
    }
  }

  template <class T>
  void check(const prefill_problem& p, mask_kind kind, const random_mask& spec = {}) {
    const std::uint64_t seed = tessel::test::test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    bias_plane biases = kind == mask_kind::none ? bias_plane{} : make_biases(p, kind, spec, rng);
    const prefill_inputs<T> in = make_inputs<T>(p, kind, std::move(biases), rng);
    expect_matches_reference(in, run(in));
  }
};

prefill_problem problem(std::uint32_t head_dim, std::uint32_t batch, std::uint32_t heads,
                        std::uint32_t kv_heads, std::uint32_t query_len, std::uint32_t key_len,
                        attention_layout layout = attention_layout::head_major) {
  prefill_problem p;
  p.head_dim = head_dim;
  p.batch = batch;
  p.num_heads = heads;
  p.num_kv_heads = kv_heads;
  p.query_len = query_len;
  p.key_len = key_len;
  p.layout = layout;
  return p;
}

prefill_problem causal(prefill_problem p, std::uint32_t offset) {
  p.causal = true;
  p.query_offset = offset;
  return p;
}

prefill_problem rank(prefill_problem p, std::uint32_t mask_rank) {
  p.mask_rank = mask_rank;
  return p;
}

TEST_F(Prefill, HeadDim64RaggedShapes) {
  // Neither length a multiple of the 32 x 64 tile; GQA 2 and 4; both layouts.
  check<f16>(problem(64, 2, 4, 2, 45, 70), mask_kind::none);
  check<bf16>(causal(problem(64, 1, 4, 1, 33, 77, attention_layout::seq_major), 0),
              mask_kind::boolean);
}

TEST_F(Prefill, HeadDim128MasksOfEveryRank) {
  check<f16>(problem(128, 1, 2, 2, 40, 53), mask_kind::additive);
  // A bottom-right causal block (offset = key_len - query_len) with a rank-4 mask.
  check<bf16>(rank(causal(problem(128, 2, 2, 1, 19, 100, attention_layout::seq_major), 81), 4),
              mask_kind::boolean);
}

TEST_F(Prefill, HeadDim256) {
  check<f16>(rank(causal(problem(256, 1, 4, 2, 21, 37, attention_layout::seq_major), 5), 4),
             mask_kind::additive);
  // Lengths that are multiples of the 16 x 16 tile: the aligned code paths.
  check<bf16>(problem(256, 2, 1, 1, 16, 32), mask_kind::boolean);
}

TEST_F(Prefill, HeadDim512) {
  check<f16>(causal(problem(512, 1, 2, 1, 17, 25), 8), mask_kind::additive);
  check<bf16>(problem(512, 1, 2, 2, 9, 8, attention_layout::seq_major), mask_kind::none);
}

TEST_F(Prefill, OneQueryOneKey) {
  check<bf16>(problem(64, 1, 1, 1, 1, 1), mask_kind::none);
}

TEST_F(Prefill, FullyMaskedRowsAreExactZeros) {
  random_mask spec;
  spec.empty_rows = {0, 7, 33};
  check<f16>(problem(64, 1, 2, 2, 40, 50), mask_kind::additive, spec);
  // Rank 4: the rows are empty in some (batch, head) planes only.
  spec.empty_rows = {2, 3};
  spec.empty_planes = {1, 2};
  check<bf16>(rank(problem(256, 2, 2, 1, 20, 19), 4), mask_kind::boolean, spec);
}

TEST_F(Prefill, KeyCacheLargerThanKeyLenIsReadOnlyUpToKeyLen) {
  // The positions past key_len hold NaN: one read would poison the output.
  prefill_problem p = problem(64, 2, 2, 1, 30, 50);
  p.kv_capacity = 64;
  check<f16>(p, mask_kind::none);
  p = causal(problem(512, 1, 2, 2, 5, 13, attention_layout::seq_major), 8);
  p.kv_capacity = 16;
  check<bf16>(p, mask_kind::none);
}

// KERNELS.md Q2: the seed's tile-range rule leaked future keys to the first
// rows when query_offset is not a multiple of the key tile but key_len is,
// as in resuming after a prefix of 1000 with 56 new tokens.
TEST_F(Prefill, CausalOffsetNotAMultipleOfTheKeyTile) {
  prefill_problem p = causal(problem(128, 1, 1, 1, 56, 1056), 1000);
  p.kv_capacity = 1088;
  check<bf16>(p, mask_kind::none);
  check<f16>(causal(problem(256, 1, 1, 1, 56, 64), 8), mask_kind::none);
}

TEST_F(Prefill, Rank2MaskEqualsItsRank4Expansion) {
  std::mt19937_64 rng(tessel::test::test_seed());
  const prefill_problem p2 = problem(128, 2, 2, 2, 37, 41);
  const prefill_problem p4 = rank(p2, 4);
  const bias_plane plane = make_biases(p2, mask_kind::additive, {}, rng);
  bias_plane expanded;
  for (int copy = 0; copy < 4; ++copy) expanded.insert(expanded.end(), plane.begin(), plane.end());
  prefill_inputs<f16> in2 = make_inputs<f16>(p2, mask_kind::additive, plane, rng);
  prefill_inputs<f16> in4 = in2;
  in4.problem = p4;
  in4.biases = expanded;
  const auto got2 = run(in2);
  const auto got4 = run(in4);
  ASSERT_EQ(got2.size(), got4.size());
  EXPECT_EQ(std::memcmp(got2.data(), got4.data(), got2.size() * sizeof(f16)), 0);
  expect_matches_reference(in2, got2);
}

// Any multiple of 16 is one instantiation away; 80 also takes the 2-wide
// vector path (80 is not a multiple of 32).
static_assert(tessel::fits<kernels::prefill<80, f16>>(tessel::targets::portable));
static_assert(tessel::fits<kernels::prefill<80, f16>>(tessel::targets::nvidia));
static_assert(kernels::prefill<80, f16>::tiles.chunk_width == 2);

TEST_F(Prefill, HeadDimOutsideTheShippedListByInstantiation) {
  const std::uint64_t seed = tessel::test::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const prefill_problem p = causal(problem(80, 1, 3, 1, 35, 60, attention_layout::seq_major), 20);
  const prefill_inputs<f16> in = make_inputs<f16>(p, mask_kind::none, {}, rng);
  vk::buffer<f16> q(ctx(), in.q.size()), k(ctx(), in.k.size()), v(ctx(), in.v.size()),
      o(ctx(), in.q.size());
  q.upload(in.q);
  k.upload(in.k);
  v.upload(in.v);
  o.fill(nan_of<f16>());
  vk::recorder rec(ctx());
  kernels::record_prefill_variant<80, f16>(rec, p, q, k, v, o);
  rec.submit_and_wait();
  expect_matches_reference(in, o.download());
}

}  // namespace

// --- the tile classifier -------------------------------------------------------

class PrefillBlk : public Prefill {
 protected:
  template <class M>
  std::vector<u8> classify(const prefill_problem& p, const std::vector<M>& host_mask) {
    vk::buffer<M> mask(ctx(), host_mask.size());
    mask.upload(host_mask);
    vk::buffer<u8> blk(ctx(), kernels::prefill_sizes_of(p).blk);
    blk.fill(0xEE);
    vk::recorder rec(ctx());
    kernels::record_prefill_blk(rec, p, mask, blk);
    rec.submit_and_wait();
    return blk.download();
  }

  // The classes of the mask `in` holds, on the device, against the reference.
  template <class T>
  void expect_classes_match(const prefill_inputs<T>& in) {
    const std::vector<u8> want = tessel::reference::prefill_blk(in.problem, in.biases);
    const std::vector<u8> got = in.kind == mask_kind::additive ? classify(in.problem, in.additive())
                                                               : classify(in.problem, in.boolean());
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << "tile " << i;
  }

  // The prefill with and without the classes: the same bits, and right. The
  // mask must give tiles of every class, or the test would prove less.
  template <class T>
  void expect_same_bits_with_classes(const prefill_inputs<T>& in) {
    const std::vector<u8> classes = tessel::reference::prefill_blk(in.problem, in.biases);
    for (u8 c : {0, 1, 2})
      ASSERT_NE(std::count(classes.begin(), classes.end(), c), 0) << "no tile of class " << int(c);
    expect_classes_match(in);
    const std::vector<T> plain = run(in, false);
    const std::vector<T> skipping = run(in, true);
    ASSERT_EQ(plain.size(), skipping.size());
    for (std::size_t i = 0; i < plain.size(); ++i)
      ASSERT_EQ(bits_of(plain[i]), bits_of(skipping[i])) << "element " << i;
    expect_matches_reference(in, skipping);
  }
};

TEST_F(PrefillBlk, SlidingWindowSkipsTilesWithoutChangingABit) {
  std::mt19937_64 rng(tessel::test::test_seed());
  // A window of 128 over a causal block resumed at 200, in 32 x 64 tiles.
  prefill_problem p = causal(problem(64, 1, 2, 1, 100, 300), 200);
  expect_same_bits_with_classes(
      make_inputs<f16>(p, mask_kind::additive, window_biases(p, 128), rng));
  // D = 512 tiles are 16 x 8; the band alone, no in-kernel causal masking.
  p = problem(512, 1, 2, 2, 40, 56, attention_layout::seq_major);
  p.query_offset = 16;
  expect_same_bits_with_classes(
      make_inputs<bf16>(p, mask_kind::boolean, window_biases(p, 32), rng));
}

// Random tiles of every class in every (batch, head) plane of a rank-4 mask.
TEST_F(PrefillBlk, Rank4MasksHaveOnePlanePerHead) {
  std::mt19937_64 rng(tessel::test::test_seed());
  const prefill_problem p = rank(problem(128, 2, 2, 1, 70, 90), 4);
  const kernels::prefill_geometry g = kernels::prefill_geometry_for(p.head_dim);
  bias_plane biases = make_biases(p, mask_kind::additive, {}, rng);
  std::uniform_int_distribution<int> pick(0, 2);
  for (std::uint32_t plane = 0; plane < 4; ++plane)
    for (std::uint32_t qt = 0; qt < kernels::ceil_div(p.query_len, g.query_rows); ++qt)
      for (std::uint32_t kt = 0; kt < kernels::ceil_div(p.key_len, g.keys); ++kt) {
        const int kind = pick(rng);  // 0 blocked, 2 plain, 1 left random
        if (kind == 1) continue;
        for (std::uint32_t i = qt * g.query_rows;
             i < std::min(p.query_len, (qt + 1) * g.query_rows); ++i)
          for (std::uint32_t j = kt * g.keys; j < std::min(p.key_len, (kt + 1) * g.keys); ++j)
            biases[(std::uint64_t{plane} * p.query_len + i) * p.key_len + j] =
                kind == 0 ? -inf : 0.0f;
      }
  expect_same_bits_with_classes(make_inputs<bf16>(p, mask_kind::additive, biases, rng));
}

// KERNELS.md Q5: the seed examined 32 columns of a 64-key tile. A tile whose
// only attended (or only non-zero) cell is its last column is mixed.
TEST_F(PrefillBlk, EveryColumnOfATileIsExamined) {
  const prefill_problem p = problem(64, 1, 1, 1, 32, 128);  // tiles of 32 x 64: one row of two
  bias_plane blocked_but_last(32 * 128, -inf), zero_but_last(32 * 128, 0.0f);
  for (std::uint32_t i = 0; i < 32; ++i) {
    blocked_but_last[i * 128 + 63] = 0;
    zero_but_last[i * 128 + 127] = -inf;
  }
  prefill_inputs<bf16> in;
  in.problem = p;
  in.kind = mask_kind::additive;
  in.biases = blocked_but_last;
  EXPECT_EQ(classify(p, in.additive()), (std::vector<u8>{1, 0}));
  in.biases = zero_but_last;
  EXPECT_EQ(classify(p, in.boolean()), (std::vector<u8>{2, 1}));
}

// --- validation ----------------------------------------------------------------

TEST_F(Prefill, BadArgumentsAreRejectedBeforeRecording) {
  const prefill_problem good = problem(64, 1, 4, 2, 10, 12);
  vk::buffer<f16> q(ctx(), 4 * 10 * 64), k(ctx(), 2 * 12 * 64), v(ctx(), 2 * 12 * 64),
      o(ctx(), 4 * 10 * 64), additive(ctx(), 10 * 12), short_q(ctx(), 4 * 10 * 64 - 1);
  vk::buffer<u8> boolean(ctx(), 10 * 12), blk(ctx(), 1), long_blk(ctx(), 2);
  vk::recorder rec(ctx());
  const auto expect_error = [](const std::string& fragment, const auto& call) {
    try {
      call();
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  const auto with = [&](auto change) {
    prefill_problem p = good;
    change(p);
    return p;
  };
  const auto plain = [&](const prefill_problem& p) {
    return [&rec, p, &q, &k, &v, &o] { kernels::record_prefill(rec, p, q, k, v, o); };
  };
  expect_error("head_dim = 96 has no variant; supported: 64, 128, 256, 512",
               plain(with([](auto& p) { p.head_dim = 96; })));
  expect_error("num_heads = 4 must be a multiple of num_kv_heads = 3",
               plain(with([](auto& p) { p.num_kv_heads = 3; })));
  expect_error("batch = 0 must be > 0", plain(with([](auto& p) { p.batch = 0; })));
  expect_error("query_len = 0 must be > 0", plain(with([](auto& p) { p.query_len = 0; })));
  expect_error("key_len = 0 must be > 0", plain(with([](auto& p) { p.key_len = 0; })));
  expect_error("kv_capacity = 11 must be 0 (= key_len) or >= key_len = 12",
               plain(with([](auto& p) { p.kv_capacity = 11; })));
  expect_error("mask_rank = 3 must be 2 or 4", plain(with([](auto& p) { p.mask_rank = 3; })));
  expect_error("scale = nan must be finite", plain(with([](auto& p) { p.scale = std::nanf(""); })));
  expect_error("query_offset + query_len = 2147483650 must fit int32",
               plain(with([](auto& p) { p.query_offset = 2147483640; })));
  expect_error("query_len = 2097121 must be <= 2097120 for head_dim 64",
               plain(with([](auto& p) { p.query_len = 2097121; })));
  expect_error("q element count = 4294967296 must fit 32-bit indexing", plain(with([](auto& p) {
                 p.head_dim = 512;
                 p.num_heads = p.num_kv_heads = 1024;
                 p.query_len = 8192;
               })));
  expect_error("k element count = 1536 must equal 2048",
               plain(with([](auto& p) { p.kv_capacity = 16; })));
  expect_error("q element count = 2559 must equal 2560",
               [&] { kernels::record_prefill(rec, good, short_q, k, v, o); });
  expect_error("mask element count = 120 must equal 480", [&] {
    kernels::record_prefill(rec, with([](auto& p) { p.mask_rank = 4; }), q, k, v, o, additive);
  });
  expect_error("blk element count = 2 must equal 1",
               [&] { kernels::record_prefill(rec, good, q, k, v, o, boolean, &long_blk); });
  expect_error("prefill_blk: blk element count = 2 must equal 1",
               [&] { kernels::record_prefill_blk(rec, good, additive, long_blk); });
  expect_error("blk = given needs a mask", [&] {
    kernels::validate_prefill(good, {q.size(), k.size(), v.size(), o.size(), std::nullopt, 1});
  });
  expect_error("k element type = bf16 must equal q's f16", [] {
    kernels::validate_prefill_types(tessel::scalar_kind::f16, tessel::scalar_kind::bf16,
                                    tessel::scalar_kind::f16, std::nullopt);
  });
  expect_error("mask element type = f32 must be q's bf16 (additive) or u8 (boolean)", [] {
    kernels::validate_prefill_types(tessel::scalar_kind::bf16, tessel::scalar_kind::bf16,
                                    tessel::scalar_kind::bf16, tessel::scalar_kind::f32);
  });
  // Without NV cooperative matrices (lavapipe) the matrix path cannot be forced.
  if (!kernels::prefill_coopmat_supported(rec.target(), good.head_dim))
    expect_error("must have NV cooperative matrices of 16x16x16 f16 x f16 -> f32", [&] {
      kernels::record_prefill(rec, good, q, k, v, o, boolean, &blk, kernels::prefill_path::coopmat);
    });
  EXPECT_EQ(rec.dispatch_count(), 0u);
  // The same arguments, corrected, record.
  kernels::record_prefill(rec, good, q, k, v, o, boolean, &blk);
  EXPECT_EQ(rec.dispatch_count(), 1u);
}

// The host op runs the cooperative-matrix kernel where the target has NV
// cooperative matrices of 16x16x16 f16 x f16 -> f32 and 32-lane subgroups,
// for every shipped head dim, and the portable one elsewhere.
TEST(PrefillPath, CooperativeMatricesWhereTheTargetHasThem) {
  using kernels::prefill_path;
  for (std::uint32_t d : {64u, 128u, 256u, 512u}) {
    EXPECT_TRUE(kernels::prefill_coopmat_supported(tessel::targets::nvidia, d)) << d;
    EXPECT_FALSE(kernels::prefill_coopmat_supported(tessel::targets::portable, d)) << d;
    EXPECT_EQ(kernels::resolve_prefill_path(prefill_path::automatic, tessel::targets::nvidia, d),
              prefill_path::coopmat);
    EXPECT_EQ(kernels::resolve_prefill_path(prefill_path::automatic, tessel::targets::portable, d),
              prefill_path::portable);
    EXPECT_EQ(kernels::resolve_prefill_path(prefill_path::portable, tessel::targets::nvidia, d),
              prefill_path::portable);
  }
  tessel::target no_shape = tessel::targets::nvidia;
  no_shape.coopmat_shapes[0] = no_shape.coopmat_shapes[1];  // 16x8x16 only
  EXPECT_FALSE(kernels::prefill_coopmat_supported(no_shape, 128));
  tessel::target wide_subgroups = tessel::targets::nvidia;
  wide_subgroups.subgroup_size = 64;
  EXPECT_FALSE(kernels::prefill_coopmat_supported(wide_subgroups, 128));
  // Supported exactly where the default tiles' shared memory fits.
  tessel::target small_shared = tessel::targets::nvidia;
  small_shared.shared_memory_bytes =
      kernels::coopmat_prefill_shared_bytes(128, kernels::coopmat_prefill_tiles_for(128));
  EXPECT_TRUE(kernels::prefill_coopmat_supported(small_shared, 128));
  --small_shared.shared_memory_bytes;
  EXPECT_FALSE(kernels::prefill_coopmat_supported(small_shared, 128));
}
