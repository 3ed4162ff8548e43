// Decode attention over an f16 cache against the double-precision reference.
// Cache slots the query must not attend (past kv_seq_len, outside the window,
// the ring's free slots) hold NaN, so reading one poisons the output.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <string>
#include <type_traits>

#include "tessel/kernels/decode_f16.hpp"
#include "tessel/reference/decode_f16.hpp"
#include "vk/fixture.hpp"

namespace {

using tessel::f16;
using tessel::kernels::decode_f16_args;
using tessel::kernels::decode_mask;

struct decode_problem {
  decode_f16_args args;
  std::vector<float> q;
  std::vector<f16> keys, values;
};

decode_problem make_problem(const decode_f16_args& args, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  decode_problem p{args, {}, {}, {}};
  const std::size_t D = args.head_dim;
  p.q.resize(std::size_t{args.batch} * args.num_heads * D);
  for (float& x : p.q) x = uniform(rng);
  const std::size_t cache = std::size_t{args.batch} * args.num_kv_heads * args.kv_capacity * D;
  p.keys.resize(cache);
  p.values.resize(cache);
  const f16 poison = tessel::to_f16(std::nanf(""));
  for (std::size_t i = 0; i < cache; ++i) {
    const auto slot = static_cast<std::uint32_t>(i / D % args.kv_capacity);
    const bool attended = tessel::reference::decode_attends(args, slot);
    p.keys[i] = attended ? tessel::to_f16(uniform(rng)) : poison;
    p.values[i] = attended ? tessel::to_f16(uniform(rng)) : poison;
  }
  return p;
}

std::string describe(const decode_f16_args& a) {
  return "batch=" + std::to_string(a.batch) + " H=" + std::to_string(a.num_heads) +
         " Hkv=" + std::to_string(a.num_kv_heads) + " D=" + std::to_string(a.head_dim) +
         " kv=" + std::to_string(a.kv_seq_len) + " cap=" + std::to_string(a.kv_capacity) +
         " mask=" + std::to_string(static_cast<int>(a.mask)) +
         " window=" + std::to_string(a.sliding_window) + " ring=" + std::to_string(a.ring_start) +
         " softcap=" + std::to_string(a.softcap) + " nwg=" + std::to_string(a.nwg) +
         " scale=" + std::to_string(a.scale);
}

class DecodeF16 : public tessel::test::device_test {
 protected:
  // Runs the host op's own tiling, or `record` when given.
  template <class Record = std::nullptr_t>
  std::vector<float> run(const decode_problem& p, Record record = nullptr) {
    const auto& a = p.args;
    tessel::vk::buffer<float> q(ctx(), p.q.size());
    q.upload(p.q);
    tessel::vk::buffer<f16> keys(ctx(), p.keys.size()), values(ctx(), p.values.size());
    keys.upload(p.keys);
    values.upload(p.values);
    tessel::vk::buffer<float> out(ctx(), p.q.size());
    out.fill(std::nanf(""));
    const auto plan = tessel::kernels::plan_decode_f16(ctx().device(), a);
    tessel::vk::buffer<float> scratch(ctx(), std::max<std::uint64_t>(plan.scratch_floats, 1));
    scratch.fill(std::nanf(""));
    tessel::vk::recorder rec(ctx());
    if constexpr (std::is_null_pointer_v<Record>)
      tessel::kernels::record_decode_f16(rec, q, keys, values, out, &scratch, a);
    else
      record(rec, q, keys, values, out, &scratch, a);
    rec.submit_and_wait();
    return out.download();
  }

  template <class Record = std::nullptr_t>
  void check(const decode_f16_args& a, Record record = nullptr) {
    const std::uint64_t seed = tessel::test::test_seed();
    SCOPED_TRACE("seed " + std::to_string(seed) + " " + describe(a));
    const decode_problem p = make_problem(a, seed);
    const std::vector<float> got = run(p, record);
    const std::vector<double> expected =
        tessel::reference::decode_f16(p.q, p.keys, p.values, p.args);
    // f32 dot products and exp against double: scores carry a relative
    // error of a few 1e-7 * sqrt(D), the output (a convex combination of
    // values in [-1, 1]) about as much in absolute terms.
    for (std::size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], expected[i], 2e-6 + 2e-5 * std::fabs(expected[i])) << "element " << i;
  }
};

decode_f16_args shape(std::uint32_t heads, std::uint32_t kv_heads, std::uint32_t dim,
                      std::uint32_t seq, std::uint32_t capacity) {
  decode_f16_args a;
  a.num_heads = heads;
  a.num_kv_heads = kv_heads;
  a.head_dim = dim;
  a.kv_seq_len = seq;
  a.kv_capacity = capacity;
  return a;
}

TEST_F(DecodeF16, RaggedLengthsEveryHeadDimAndGqa) {
  // Every head dim with GQA 1, 2, 4 and 8 and ragged lengths, once with the
  // chosen split and once with an explicit one.
  const std::uint32_t dims[] = {64, 128, 256, 512};
  const std::uint32_t groups[] = {1, 2, 4, 8};
  const std::uint32_t lengths[] = {1, 7, 33, 1000};
  for (std::size_t i = 0; i < 4; ++i) {
    decode_f16_args a = shape(8, 8 / groups[i], dims[i], lengths[i], lengths[i] + 5);
    check(a);
    a = shape(groups[(i + 1) % 4] * 2, 2, dims[i], lengths[(i + 2) % 4], lengths[(i + 2) % 4]);
    a.nwg = 3;
    check(a);
  }
}

TEST_F(DecodeF16, SplitCountsFromOneToManyAgree) {
  // 1000 keys: one slice, a few, more slices than blocks (empty slices).
  for (const std::uint32_t nwg : {1u, 2u, 7u, 16u, 40u, 256u}) {
    decode_f16_args a = shape(8, 2, 128, 1000, 1024);
    a.nwg = nwg;
    a.scale = 0.4f;  // sharper softmax than 1/sqrt(D)
    check(a);
  }
}

TEST_F(DecodeF16, EveryTilingAgrees) {
  // The host ops use one head per subgroup; the engine also splits a tile's
  // rows among subgroups (merged in shared memory) and keeps several heads
  // in one subgroup's registers.
  using tessel::kernels::decode_tiling;
  auto check_tiling = [&]<decode_tiling T>() {
    SCOPED_TRACE("tiling " + std::to_string(T.heads) + "/" + std::to_string(T.heads_per_subgroup) +
                 "/" + std::to_string(T.position_splits));
    for (const std::uint32_t nwg : {1u, 3u}) {
      decode_f16_args a = shape(16, 2, 64, 333, 340);
      a.heads_per_group = T.heads;
      a.nwg = nwg;
      check(a, tessel::kernels::record_decode_f16_tiled<64, T>);
    }
  };
  check_tiling.template operator()<decode_tiling{1, 1, 8}>();
  check_tiling.template operator()<decode_tiling{2, 2, 4}>();
  check_tiling.template operator()<decode_tiling{4, 1, 2}>();
  check_tiling.template operator()<decode_tiling{8, 4, 2}>();
}

TEST_F(DecodeF16, MasksRingsAndSoftcap) {
  decode_f16_args a = shape(4, 2, 256, 300, 512);
  a.mask = decode_mask::causal;
  check(a);

  a.mask = decode_mask::sliding_window;  // the 64 newest of 300
  a.sliding_window = 64;
  check(a);
  a.sliding_window = 500;  // a window longer than the cache attends everything
  check(a);

  // A full ring that wrapped: the oldest entry sits in slot 77.
  a = shape(8, 4, 128, 200, 200);
  a.ring_start = 77;
  check(a);
  a.mask = decode_mask::sliding_window;  // window across the wrap point
  a.sliding_window = 150;
  a.nwg = 5;
  check(a);

  a = shape(8, 8, 64, 513, 600);
  a.softcap = 5.0f;
  a.scale = 3.0f;  // scores beyond the cap, so tanh saturates
  check(a);
}

TEST_F(DecodeF16, BatchedSequences) {
  decode_f16_args a = shape(4, 1, 64, 97, 128);
  a.batch = 3;
  check(a);
  a = shape(16, 4, 256, 33, 40);
  a.batch = 2;
  a.mask = decode_mask::sliding_window;
  a.sliding_window = 20;
  a.nwg = 4;
  check(a);
}

TEST_F(DecodeF16, RunsAreBitIdentical) {
  decode_f16_args a = shape(8, 2, 256, 700, 700);
  a.nwg = 6;
  const decode_problem p = make_problem(a, tessel::test::test_seed());
  const std::vector<float> first = run(p), second = run(p);
  for (std::size_t i = 0; i < first.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint32_t>(first[i]), std::bit_cast<std::uint32_t>(second[i]))
        << "element " << i;
}

TEST_F(DecodeF16, BadArgumentsAreRejectedBeforeRecording) {
  const decode_f16_args good = shape(4, 2, 64, 10, 16);
  tessel::vk::buffer<float> q(ctx(), 4 * 64), out(ctx(), 4 * 64), small_scratch(ctx(), 8);
  tessel::vk::buffer<f16> keys(ctx(), 2 * 16 * 64), values(ctx(), 2 * 16 * 64);
  tessel::vk::buffer<f16> short_cache(ctx(), 2 * 15 * 64);
  out.fill(1.5f);
  tessel::vk::recorder rec(ctx());
  auto expect_error = [&](decode_f16_args a, const std::string& fragment,
                          const tessel::vk::buffer<f16>* k = nullptr,
                          const tessel::vk::buffer<float>* scratch = nullptr) {
    try {
      tessel::kernels::record_decode_f16(rec, q, k ? *k : keys, values, out, scratch, a);
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto with = [&](auto change) {
    decode_f16_args a = good;
    change(a);
    return a;
  };
  expect_error(with([](auto& a) { a.head_dim = 96; }),
               "head_dim = 96 has no variant; supported: 64, 128, 256, 512");
  expect_error(with([](auto& a) { a.num_kv_heads = 3; }),
               "num_heads = 4 must be a multiple of num_kv_heads = 3");
  expect_error(with([](auto& a) { a.num_kv_heads = 0; }), "num_kv_heads = 0 must be > 0");
  expect_error(with([](auto& a) { a.kv_seq_len = 0; }), "kv_seq_len = 0 must be > 0");
  expect_error(with([](auto& a) { a.kv_capacity = 8; }), "kv_capacity = 8 must be >= kv_seq_len");
  expect_error(with([](auto& a) { a.ring_start = 16; }), "ring_start = 16 must be < kv_capacity");
  expect_error(with([](auto& a) { a.mask = static_cast<decode_mask>(3); }), "mask = 3");
  expect_error(with([](auto& a) { a.mask = decode_mask::sliding_window; }),
               "sliding_window = 0 must be > 0");
  expect_error(with([](auto& a) { a.softcap = -1; }), "softcap = -1");
  expect_error(with([](auto& a) { a.scale = NAN; }), "scale = nan");
  expect_error(with([](auto& a) { a.batch = 0; }), "batch = 0");
  expect_error(with([](auto& a) { a.nwg = 257; }), "nwg = 257 must be in [1, 256]");
  expect_error(with([](auto& a) { a.heads_per_group = 3; }),
               "heads_per_group = 3 must be a power of two dividing num_heads / num_kv_heads = 2");
  expect_error(good, "keys element count = 1920 must equal 2048", &short_cache);
  expect_error(with([](auto& a) { a.nwg = 2; }), "scratch = none is required: nwg = 2 needs");
  expect_error(with([](auto& a) { a.nwg = 2; }), "scratch element count = 8 must be >= 528",
               nullptr, &small_scratch);
  // Without NV cooperative matrices (lavapipe) the matrix kernel is refused.
  if (!tessel::kernels::decode_f16_coopmat_supported(rec.target(), good.head_dim)) {
    try {
      tessel::kernels::record_decode_f16_coopmat<64>(rec, q, keys, values, out, nullptr, good);
      ADD_FAILURE() << "the matrix kernel was accepted without cooperative matrices";
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "must have NV cooperative matrices of 16x16x16 f16 x f16 -> f32"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(rec.dispatch_count(), 0u);
  for (float x : out.download()) ASSERT_EQ(x, 1.5f);
}

// The host op runs the matrix kernel where the target has NV cooperative
// matrices of 16x16x16 f16 x f16 -> f32, 32-lane subgroups and the shared
// memory of the head dim's tiles, for 4 or more query heads per workgroup;
// the engine's kernels elsewhere. (Its results are checked on the H100 by
// decode_bench --check: no device in CI has the matrix units.)
TEST(DecodeF16Coopmat, RunsWhereTheTargetHasMatrixUnitsAndFourHeadsOrMore) {
  using tessel::kernels::decode_f16_coopmat_supported;
  using tessel::kernels::decode_f16_runs_coopmat;
  const tessel::target& nvidia = tessel::targets::nvidia;
  for (std::uint32_t d : {64u, 128u, 256u, 512u}) {
    EXPECT_TRUE(decode_f16_coopmat_supported(nvidia, d)) << d;
    EXPECT_FALSE(decode_f16_coopmat_supported(tessel::targets::portable, d)) << d;
    EXPECT_TRUE(decode_f16_runs_coopmat(nvidia, d, 4)) << d;
    EXPECT_TRUE(decode_f16_runs_coopmat(nvidia, d, 8)) << d;
    EXPECT_FALSE(decode_f16_runs_coopmat(nvidia, d, 2)) << d;
    EXPECT_FALSE(decode_f16_runs_coopmat(tessel::targets::portable, d, 8)) << d;
  }
  EXPECT_FALSE(decode_f16_coopmat_supported(nvidia, 96));
  tessel::target no_shape = nvidia;
  no_shape.coopmat_shapes[0] = no_shape.coopmat_shapes[1];  // 16x8x16 only
  EXPECT_FALSE(decode_f16_coopmat_supported(no_shape, 128));
  tessel::target wide_subgroups = nvidia;
  wide_subgroups.subgroup_size = 64;
  EXPECT_FALSE(decode_f16_coopmat_supported(wide_subgroups, 128));
  tessel::target small_shared = nvidia;
  small_shared.shared_memory_bytes = 32768;
  EXPECT_TRUE(decode_f16_coopmat_supported(small_shared, 128));
  EXPECT_FALSE(decode_f16_coopmat_supported(small_shared, 512));
}

// The matrix kernel's plan rounds the NWG estimate down (one workgroup per
// compute unit at most), the engine's up, on a device like the H100.
TEST(DecodeF16Coopmat, PlanRoundsTheSplitDownForTheMatrixKernel) {
  tessel::vk::device_traits h100;
  h100.compute_units = 132;
  h100.subgroup_size = 32;
  h100.shared_memory_bytes = 49152;
  h100.coopmat_shapes.assign(
      tessel::targets::nvidia.coopmat_shapes.begin(),
      tessel::targets::nvidia.coopmat_shapes.begin() + tessel::targets::nvidia.coopmat_shape_count);
  h100.features = tessel::targets::nvidia.features;
  tessel::vk::device_traits without_matrix_units = h100;
  without_matrix_units.features = tessel::feature::none;
  // 2 KV heads of 8 query heads: 66 workgroups per slice set fill the
  // units, 32 slices of 2 MiB; 64 for the matrix kernel, 128 otherwise.
  const decode_f16_args gqa8 = shape(16, 2, 512, 32768, 32768);
  EXPECT_EQ(tessel::kernels::plan_decode_f16(h100, gqa8).nwg, 64u);
  EXPECT_EQ(tessel::kernels::plan_decode_f16(without_matrix_units, gqa8).nwg, 128u);
  // 2 query heads per KV head: the engine's plan on both.
  const decode_f16_args gqa2 = shape(16, 8, 256, 32768, 32768);
  EXPECT_EQ(tessel::kernels::plan_decode_f16(h100, gqa2).nwg, 32u);
  EXPECT_EQ(tessel::kernels::plan_decode_f16(without_matrix_units, gqa2).nwg, 32u);
}

}  // namespace
