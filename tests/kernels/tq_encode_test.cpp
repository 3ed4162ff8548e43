// The TurboQuant encoder on the device against the double-precision
// reference: exact codes where no rounding can matter, the documented tie
// rule elsewhere, ring buffers, untouched slots, zero rows, the quality of
// the codes against the codebooks' distortion, the GLSL unpacking snippet
// and the op's validation.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compiled_catalog.hpp"
#include "kernels/tq_cache_fixture.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "tessel/reference/turboquant.hpp"
#include "vk/fixture.hpp"

namespace {

using tessel::kernels::tq_cache_format;
using tessel::kernels::tq_encode_args;
using tessel::reference::tq_cache;
using tessel::test::device_cache;
using tessel::test::poison_word;
using tessel::test::poisoned_reference;

std::string describe(const tq_cache_format& f, const tq_encode_args& a) {
  return "H=" + std::to_string(f.num_kv_heads) + " cap=" + std::to_string(f.kv_capacity) +
         " D=" + std::to_string(f.head_dim) + " bits=" + std::to_string(f.bits) +
         " T=" + std::to_string(a.n_tokens) + " first=" + std::to_string(a.first_position) +
         (a.ring ? " ring" : "") + (a.rotate ? "" : " raw") +
         " sf=" + std::to_string(a.scale_factor_d512);
}

// Codes bit for bit, norms to f32 accuracy (sums of at most 256 squares,
// one sqrt: a few ulps), untouched slots still poisoned (NaN norms).
void expect_same_cache(const tq_cache& got, const tq_cache& want) {
  ASSERT_EQ(got.codes.size(), want.codes.size());
  for (std::size_t i = 0; i < got.codes.size(); ++i)
    ASSERT_EQ(got.codes[i], want.codes[i]) << "code word " << i;
  for (std::size_t i = 0; i < got.norms.size(); ++i) {
    if (std::isnan(want.norms[i])) {
      ASSERT_TRUE(std::isnan(got.norms[i])) << "norm " << i << " was written";
    } else {
      ASSERT_NEAR(got.norms[i], want.norms[i], 1e-30 + 2e-6 * want.norms[i]) << "norm " << i;
    }
  }
}

class TqEncode : public tessel::test::device_test {
 protected:
  // Encodes rows clear of the boundaries on the device and the host and
  // requires identical caches.
  void expect_exact(const tq_cache_format& f, const tq_encode_args& args, std::uint64_t seed) {
    SCOPED_TRACE(describe(f, args) + " seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const std::vector<float> src = tessel::reference::tq_rows_clear_of_boundaries(
        rng, f.num_kv_heads * args.n_tokens, f.head_dim, f.bits, args.rotate,
        args.scale_factor_d512);
    device_cache gpu(ctx(), f);
    gpu.encode(src, args);
    tq_cache want = poisoned_reference(f);
    tessel::reference::tq_encode(want, src, args);
    expect_same_cache(gpu.download(), want);
  }
};

TEST_F(TqEncode, MatchesTheReferenceExactlyForEveryWidthAndHeadDim) {
  for (std::uint32_t dim : {64u, 128u, 256u, 512u})
    for (std::uint32_t bits : tessel::tq::codebook_widths)
      expect_exact({3, 11, dim, bits}, {5, 4, false, true, 0.0f}, tessel::test::test_seed());
}

// The rotation is a specialization constant: the other paths are shared, so
// two shapes (one and two norm blocks, nibbles and bytes) cover it.
TEST_F(TqEncode, NoRotationPathMatchesTheReference) {
  expect_exact({2, 7, 64, 4}, {7, 0, false, false, 0.0f}, tessel::test::test_seed());
  expect_exact({2, 7, 512, 8}, {7, 0, false, false, 0.0f}, tessel::test::test_seed());
}

// Q10: scale_factor_d512 = 0 means 1.0; other values scale the D = 512
// blocks and leave smaller head dims alone.
TEST_F(TqEncode, ScaleFactorZeroMeansOne) {
  const tq_cache_format f{2, 4, 512, 6};
  std::mt19937_64 rng(tessel::test::test_seed());
  const std::vector<float> src =
      tessel::reference::tq_rows_clear_of_boundaries(rng, 2 * 3, 512, 6, true, 1.0f);
  device_cache zero(ctx(), f), one(ctx(), f);
  zero.encode(src, {3, 1, false, true, 0.0f});
  one.encode(src, {3, 1, false, true, 1.0f});
  EXPECT_EQ(zero.codes(), one.codes());
  expect_exact(f, {3, 0, false, true, 2.5f}, tessel::test::test_seed());
  expect_exact({1, 3, 256, 8}, {3, 0, false, true, 7.0f}, tessel::test::test_seed());
}

// Random rows, not steered clear of the boundaries: every code is the
// reference's, or its neighbour where the reference's u lies within
// tq_tie_band of the boundary between them.
TEST_F(TqEncode, RandomRowsMatchUpToDocumentedTies) {
  for (std::uint32_t dim : {128u, 512u})
    for (std::uint32_t bits : tessel::tq::codebook_widths) {
      const std::uint64_t seed = tessel::test::test_seed();
      const tq_cache_format f{4, 64, dim, bits};
      const tq_encode_args args{64, 0, false, true, 0.0f};
      SCOPED_TRACE(describe(f, args) + " seed " + std::to_string(seed));
      std::mt19937_64 rng(seed);
      const std::vector<float> src =
          tessel::test::random_floats(rng, std::size_t{f.num_kv_heads} * args.n_tokens * dim);
      device_cache gpu(ctx(), f);
      gpu.encode(src, args);
      const tq_cache got = gpu.download();
      const tessel::tq::codebook cb = tessel::tq::codebook_for(bits);
      std::uint32_t ties = 0;
      for (std::uint32_t head = 0; head < f.num_kv_heads; ++head)
        for (std::uint32_t token = 0; token < args.n_tokens; ++token) {
          const auto row = tessel::reference::tq_encode_row(
              std::span(src).subspan((std::size_t{head} * args.n_tokens + token) * dim, dim), bits,
              true, 0.0f);
          const auto words = got.position_words(head, token);
          for (std::uint32_t j = 0; j < dim; ++j) {
            const std::uint32_t code = tessel::kernels::tq_get_code(words, bits, j);
            ASSERT_TRUE(tessel::reference::tq_code_acceptable(cb, row.normalized[j], code))
                << "head " << head << " token " << token << " dim " << j << ": code " << code
                << ", u = " << row.normalized[j];
            ties += code != row.codes[j];
          }
          for (std::size_t b = 0; b < row.norms.size(); ++b)
            ASSERT_NEAR(got.position_norms(head, token)[b], row.norms[b], 2e-6 * row.norms[b]);
        }
      RecordProperty("ties_d" + std::to_string(dim) + "_b" + std::to_string(bits), ties);
    }
}

// One decode step at a time through a wrap equals the reference, and a
// prompt longer than the ring keeps only its newest kv_capacity tokens.
TEST_F(TqEncode, RingBuffersWrapAndKeepTheNewestTokens) {
  const tq_cache_format f{2, 6, 256, 5};
  std::mt19937_64 rng(tessel::test::test_seed());
  device_cache gpu(ctx(), f);
  tq_cache want = poisoned_reference(f);
  // A prompt of 4 tokens, then 5 single-token steps: positions 4..8 wrap.
  const auto prompt = tessel::reference::tq_rows_clear_of_boundaries(rng, 2 * 4, 256, 5, true, 0);
  gpu.encode(prompt, {4, 0, true, true, 0.0f});
  tessel::reference::tq_encode(want, prompt, {4, 0, true, true, 0.0f});
  for (std::uint32_t position = 4; position < 9; ++position) {
    const auto step = tessel::reference::tq_rows_clear_of_boundaries(rng, 2, 256, 5, true, 0);
    gpu.encode(step, {1, position, true, true, 0.0f});
    tessel::reference::tq_encode(want, step, {1, position, true, true, 0.0f});
  }
  expect_same_cache(gpu.download(), want);

  // 15 tokens into 6 slots from position 100: slots hold positions 109..114.
  expect_exact(f, {15, 100, true, true, 0.0f}, tessel::test::test_seed());
  const auto long_prompt =
      tessel::reference::tq_rows_clear_of_boundaries(rng, 2 * 15, 256, 5, true, 0);
  device_cache all_at_once(ctx(), f), newest_only(ctx(), f);
  all_at_once.encode(long_prompt, {15, 100, true, true, 0.0f});
  std::vector<float> newest;
  for (std::uint32_t head = 0; head < 2; ++head)
    newest.insert(newest.end(), long_prompt.begin() + (head * 15 + 9) * 256,
                  long_prompt.begin() + (head * 15 + 15) * 256);
  newest_only.encode(newest, {6, 109, true, true, 0.0f});
  EXPECT_EQ(all_at_once.codes(), newest_only.codes());
  EXPECT_EQ(all_at_once.norms(), newest_only.norms());
}

// Writes touch exactly the addressed slots of every head, in a linear cache
// and in a ring, with positions at the very end of the 32-bit range.
TEST_F(TqEncode, OnlyTheAddressedSlotsChange) {
  expect_exact({3, 9, 128, 4}, {2, 7, false, true, 0.0f}, tessel::test::test_seed());
  expect_exact({2, 5, 64, 8}, {3, 0xFFFFFFFFu - 2, true, true, 0.0f}, tessel::test::test_seed());
  expect_exact({1, 1, 512, 6}, {1, 0, false, true, 0.0f}, tessel::test::test_seed());
}

// A zero row has norm 0 and every code n/2 - 1 (the negative level nearest
// 0); a row below the 1e-10 norm threshold gets the same codes and keeps its
// tiny norm. Both decode to (almost) zero.
TEST_F(TqEncode, ZeroAndTinyRows) {
  for (std::uint32_t dim : {64u, 512u})
    for (std::uint32_t bits : tessel::tq::codebook_widths) {
      SCOPED_TRACE("D=" + std::to_string(dim) + " bits=" + std::to_string(bits));
      const tq_cache_format f{1, 2, dim, bits};
      std::vector<float> src(2 * dim, 0.0f);
      for (std::uint32_t j = 0; j < dim; ++j) src[dim + j] = (j % 3 ? 1e-13f : -2e-13f);
      device_cache gpu(ctx(), f);
      gpu.encode(src, {2, 0, false, true, 0.0f});
      const tq_cache got = gpu.download();
      for (std::uint32_t slot = 0; slot < 2; ++slot) {
        for (std::uint32_t j = 0; j < dim; ++j)
          ASSERT_EQ(tessel::kernels::tq_get_code(got.position_words(0, slot), bits, j),
                    (1u << bits) / 2 - 1);
        for (double norm : got.position_norms(0, slot)) {
          // Slot 0 holds the zero row, slot 1 the tiny one.
          EXPECT_EQ(norm == 0.0, slot == 0) << norm;
          EXPECT_LT(norm, 1e-10);
        }
        for (double v : tessel::reference::tq_dequantize_position(got, 0, slot, 0.0f))
          ASSERT_LT(std::abs(v), 1e-10);
      }
    }
}

// The quality of the device's codes: over Gaussian rows, the mean squared
// error between the quantizer inputs u (the normalized rotated values) and
// their codes' centroids equals the codebook's distortion under the exact
// law of u (a coordinate of a uniform point on the sphere of radius
// sqrt(n), n = norm block). The tolerance is five standard errors of that
// mean, estimated from the sample (the squared errors of one row are nearly
// independent: their coupling through the fixed sum of u^2 is O(1/n) and
// negative); at 32,768 samples that is about 3% of the distortion.
// The measured mean therefore matches the Lloyd-Max distortion for N(0,1)
// within those five standard errors plus the finite-n correction between
// the two laws (the sphere law tends to N(0,1) as n grows: -1.9% to -2.2%
// at n = 128, about -1% at 256, less at 8 bits), which the test computes and
// requires to stay below 2.5%.
TEST_F(TqEncode, SquaredErrorMatchesTheCodebookDistortion) {
  for (std::uint32_t dim : {128u, 512u})
    for (std::uint32_t bits : tessel::tq::codebook_widths) {
      const std::uint64_t seed = tessel::test::test_seed();
      const tq_cache_format f{4, 64, dim, bits};
      const tq_encode_args args{64, 0, false, true, 0.0f};
      SCOPED_TRACE(describe(f, args) + " seed " + std::to_string(seed));
      std::mt19937_64 rng(seed);
      std::normal_distribution<float> normal;
      std::vector<float> src(std::size_t{f.num_kv_heads} * args.n_tokens * dim);
      for (float& x : src) x = normal(rng);
      device_cache gpu(ctx(), f);
      gpu.encode(src, args);
      const tq_cache got = gpu.download();
      const tessel::tq::codebook cb = tessel::tq::codebook_for(bits);
      double sum = 0, sum_squares = 0;
      std::size_t count = 0;
      for (std::uint32_t head = 0; head < f.num_kv_heads; ++head)
        for (std::uint32_t token = 0; token < args.n_tokens; ++token) {
          const auto row = tessel::reference::tq_encode_row(
              std::span(src).subspan((std::size_t{head} * args.n_tokens + token) * dim, dim), bits,
              true, 0.0f);
          for (std::uint32_t j = 0; j < dim; ++j) {
            const std::uint32_t code =
                tessel::kernels::tq_get_code(got.position_words(head, token), bits, j);
            const double e = row.normalized[j] - cb.centroids[code];
            sum += e * e;
            sum_squares += e * e * e * e;
            ++count;
          }
        }
      const double mean = sum / count;
      const double standard_error = std::sqrt((sum_squares / count - mean * mean) / count);
      const std::uint32_t block = std::min(dim, tessel::kernels::tq_norm_block);
      const double expected = tessel::reference::tq_distortion(
          cb, [&](double u) { return tessel::reference::tq_sphere_coordinate_pdf(u, block); },
          std::sqrt(double(block)));
      const double gaussian = tessel::reference::tq_gaussian_distortion(cb);
      EXPECT_NEAR(mean, expected, 5 * standard_error)
          << "Gaussian Lloyd-Max distortion " << gaussian;
      EXPECT_LT(std::abs(expected - gaussian), 0.025 * gaussian);
      RecordProperty("mse_d" + std::to_string(dim) + "_b" + std::to_string(bits),
                     std::to_string(mean) + " (N(0,1) Lloyd-Max " + std::to_string(gaussian) + ")");
    }
}

// The GLSL unpacking snippet reads back what the host packing wrote: codes
// one by one, quads of centroids, and the value scale of each norm rule.
struct ProbeParams {
  std::uint32_t head_dim;
  std::uint32_t positions;
  float scale_factor_d512;
};
TESSEL_PARAMS(ProbeParams, head_dim, positions, scale_factor_d512);

struct tq_unpack_probe {
  static constexpr auto name = tessel::name("tq_unpack_probe");
  using params = ProbeParams;
  using bindings =
      tessel::bindings<tessel::in<"words", std::uint32_t>, tessel::in<"stored_norms", float>,
                       tessel::out<"codes_out", std::uint32_t>, tessel::out<"values", float>,
                       tessel::out<"scales", float>>;
  using constants = tessel::constants<tessel::spec<"bits", std::uint32_t, 0, 4u>>;
  using workgroup = tessel::workgroup<64>;
  using snippets = tessel::snippet_list<tessel::snippets::tq_unpack>;
  static constexpr std::string_view body = R"glsl(
void main() {
  // One invocation per quad (4 coordinates) of the whole cache.
  const uint quad_global = gl_GlobalInvocationID.x;
  const uint quads = params.head_dim / 4u;
  if (quad_global >= params.positions * quads) return;
  const uint position = quad_global / quads, quad = quad_global % quads;
  const uint per_word = 32u / tq_storage_bits(bits);
  const uint position_word = position * (params.head_dim / per_word);
  const vec4 centroids =
      tq_dequantize_quad(bits, words[position_word + tq_quad_word(bits, quad)], quad);
  for (uint k = 0u; k < 4u; ++k) {
    const uint coordinate = 4u * quad + k;
    codes_out[position * params.head_dim + coordinate] =
        tq_word_code(words[position_word + coordinate / per_word], bits, coordinate % per_word);
    values[position * params.head_dim + coordinate] = centroids[k];
  }
  if (quad == 0u)
    scales[position] = tq_value_scale(stored_norms[position], params.head_dim,
                                      params.scale_factor_d512);
}
)glsl";
};

TEST_F(TqEncode, GlslUnpackingReadsTheHostPacking) {
  std::mt19937_64 rng(tessel::test::test_seed());
  for (std::uint32_t bits : tessel::tq::codebook_widths)
    for (std::uint32_t dim : {64u, 256u, 512u}) {
      SCOPED_TRACE("bits " + std::to_string(bits) + " D=" + std::to_string(dim));
      const std::uint32_t positions = 5;
      const tessel::tq::codebook cb = tessel::tq::codebook_for(bits);
      std::uniform_int_distribution<std::uint32_t> any_code(0, cb.levels() - 1);
      const std::uint32_t per_position = tessel::kernels::tq_words_per_position(dim, bits);
      std::vector<std::uint32_t> codes(positions * dim), words(positions * per_position);
      for (std::uint32_t p = 0; p < positions; ++p)
        for (std::uint32_t j = 0; j < dim; ++j)
          tessel::kernels::tq_set_code(std::span(words).subspan(p * per_position, per_position),
                                       bits, j, codes[p * dim + j] = any_code(rng));
      const std::vector<float> norms = tessel::test::random_floats(rng, positions, 0.5f, 40.0f);
      tessel::vk::buffer<std::uint32_t> word_buffer(ctx(), words.size()),
          codes_out(ctx(), codes.size());
      tessel::vk::buffer<float> norm_buffer(ctx(), positions), values(ctx(), codes.size()),
          scales(ctx(), positions);
      word_buffer.upload(words);
      norm_buffer.upload(norms);
      values.fill(std::nanf(""));
      const float scale_factor = 1.5f;
      tessel::vk::recorder rec(ctx());
      const tessel::vk::spec_value spec[] = {{0, bits}};
      rec.dispatch<tq_unpack_probe>(ProbeParams{dim, positions, scale_factor}, spec,
                                    tessel::extent3{(positions * dim / 4 + 63) / 64, 1, 1},
                                    word_buffer, norm_buffer, codes_out, values, scales);
      rec.submit_and_wait();
      EXPECT_EQ(codes_out.download(), codes);
      const std::vector<float> got_values = values.download();
      for (std::size_t i = 0; i < codes.size(); ++i)
        ASSERT_EQ(std::bit_cast<std::uint32_t>(got_values[i]),
                  std::bit_cast<std::uint32_t>(cb.centroids[codes[i]]))
            << i;
      const std::vector<float> got_scales = scales.download();
      for (std::uint32_t p = 0; p < positions; ++p) {
        const double want =
            dim == 512 ? norms[p] / double{scale_factor} : norms[p] / std::sqrt(double(dim));
        EXPECT_NEAR(got_scales[p], want, 1e-6 * want) << p;
      }
    }
}

TEST_F(TqEncode, BadArgumentsAreRejectedBeforeRecording) {
  const tq_cache_format good{2, 8, 128, 4};
  tessel::vk::buffer<float> src(ctx(), 2 * 3 * 128);
  tessel::vk::buffer<std::uint32_t> codes(ctx(), tessel::kernels::tq_code_words(good));
  tessel::vk::buffer<float> norms(ctx(), tessel::kernels::tq_norm_count(good));
  tessel::vk::recorder rec(ctx());
  const tq_encode_args three{3, 0, false, true, 0.0f};
  auto expect_error = [&](const tq_cache_format& f, const tq_encode_args& a,
                          const std::string& fragment) {
    try {
      tessel::kernels::record_tq_encode(rec, src, codes, norms, f, a);
      ADD_FAILURE() << "accepted " << fragment;
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error({2, 8, 128, 7}, three, "tq_encode: bits = 7 must be 4, 5, 6 or 8");
  expect_error({2, 8, 96, 4}, three, "head_dim = 96 must be 64, 128, 256 or 512");
  expect_error({0, 8, 128, 4}, three, "num_kv_heads = 0 must be > 0");
  expect_error({2, 0, 128, 4}, three, "kv_capacity = 0 must be > 0");
  expect_error(good, {0, 0, false, true, 0.0f}, "n_tokens = 0 must be > 0");
  expect_error(good, {3, 6, false, true, 0.0f},
               "first_position + n_tokens = 9 must be <= kv_capacity = 8");
  expect_error(good, {3, 0xFFFFFFFEu, true, true, 0.0f},
               "first_position + n_tokens - 1 = 4294967296 must fit 32 bits");
  expect_error(good, {3, 0, false, true, -1.0f}, "scale_factor_d512 = -1.000000 must be finite");
  expect_error(good, {3, 0, false, true, std::nanf("")}, "scale_factor_d512 = nan");
  expect_error(good, {2, 0, false, true, 0.0f}, "src element count = 768 must equal 512");
  expect_error({2, 8, 128, 8}, three, "codes element count = 256 must equal 512");
  expect_error({2, 8, 512, 4}, three, "src element count = 768 must equal 3072");
  expect_error({2, 4, 128, 4}, three, "codes element count = 256 must equal 128");
  expect_error({0x10000u, 0x10000u, 128, 8}, three, "codes element count = 137438953472");
  EXPECT_EQ(rec.dispatch_count(), 0u);
}

// Through the catalog, element types are checked at run time: f16 rows
// where f32 is required are rejected, as are flags other than 0 and 1.
TEST_F(TqEncode, CatalogRejectsWrongElementTypesAndFlags) {
  const tessel::op_entry* op = nullptr;
  for (const tessel::op_entry& e : tessel::tools::ops())
    if (e.name == "tq_encode") op = &e;
  ASSERT_NE(op, nullptr);
  const tessel::op_case c = op->demo_cases(1).front();
  tessel::tensor_map inputs = c.inputs;
  inputs["src"] = tessel::tensor::zeros(tessel::scalar_kind::f16, inputs["src"].shape);
  try {
    op->run(ctx(), inputs, c.params);
    ADD_FAILURE() << "accepted f16 rows";
  } catch (const tessel::error& e) {
    EXPECT_NE(std::string(e.what()).find("src dtype = f16 must be f32"), std::string::npos)
        << e.what();
  }
  tessel::parameter_map params = c.params;
  params["ring"] = 2;
  EXPECT_THROW(op->run(ctx(), c.inputs, params), tessel::error);
}

}  // namespace
