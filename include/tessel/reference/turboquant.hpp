// Double-precision reference of TurboQuant (kernels/tq_encode.hpp and the
// cache format of kernels/turboquant.hpp): the encoder, the dequantizer, the
// distortion of a codebook under a given density (the quality oracle), and
// a generator of rows whose codes no rounding can change.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <span>
#include <vector>

#include "tessel/dsl/snippets.hpp"
#include "tessel/dsl/tq_codebooks.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "tessel/kernels/turboquant.hpp"
#include "tessel/reference/fwht.hpp"

namespace tessel::reference {

// The code of u: the number of boundaries strictly below u, by the device's
// bisection (first probe b[n/2 - 1], offsets halving). Ties go to the lower
// code and NaN gives 0.
inline std::uint32_t tq_quantize(const tq::codebook& cb, double u) {
  std::uint32_t code = 0;
  for (std::uint32_t step = cb.levels() / 2; step != 0; step /= 2)
    code += u > double{cb.boundaries[code + step - 1]} ? step : 0;
  return code;
}

// Below this norm a row (or block) counts as zero, as on the device.
inline constexpr double tq_zero_norm = double{1e-10f};

struct tq_encoded_row {
  std::vector<std::uint32_t> codes;  // head_dim codebook indices
  std::vector<double> norms;         // tq_norms_per_position(head_dim) stored norms
  std::vector<double> normalized;    // u, the quantizer's inputs
};

// Encodes one row of head_dim (64 .. 512) values.
inline tq_encoded_row tq_encode_row(std::span<const float> x, std::uint32_t bits, bool rotate,
                                    float scale_factor_d512) {
  const auto dim = static_cast<std::uint32_t>(x.size());
  std::vector<double> y(x.begin(), x.end());
  if (rotate) rotate_row(y);
  const tq::codebook cb = tq::codebook_for(bits);
  const std::uint32_t blocks = kernels::tq_norms_per_position(dim);
  const std::uint32_t block = dim / blocks;
  tq_encoded_row out{std::vector<std::uint32_t>(dim), std::vector<double>(blocks),
                     std::vector<double>(dim)};
  for (std::uint32_t b = 0; b < blocks; ++b) {
    double sum_squares = 0;
    for (std::uint32_t j = b * block; j < (b + 1) * block; ++j) sum_squares += y[j] * y[j];
    // D <= 256: the L2 norm, u = y sqrt(D) / N; D = 512: the block RMS,
    // u = y scale_factor / n_b.
    const bool block_rms = blocks > 1;
    const double norm =
        block_rms ? std::sqrt(sum_squares / kernels::tq_norm_block) : std::sqrt(sum_squares);
    const double numerator = block_rms ? kernels::tq_resolve_scale_factor(scale_factor_d512)
                                       : std::sqrt(static_cast<double>(dim));
    const double scale = norm > tq_zero_norm ? numerator / norm : 0.0;
    out.norms[b] = norm;
    for (std::uint32_t j = b * block; j < (b + 1) * block; ++j) {
      out.normalized[j] = y[j] * scale;
      out.codes[j] = tq_quantize(cb, out.normalized[j]);
    }
  }
  return out;
}

// A host mirror of a TurboQuant cache: packed code words as on the device,
// norms in double.
struct tq_cache {
  kernels::tq_cache_format format;
  std::vector<std::uint32_t> codes;
  std::vector<double> norms;

  explicit tq_cache(const kernels::tq_cache_format& f)
      : format(f), codes(kernels::tq_code_words(f)), norms(kernels::tq_norm_count(f)) {}

  std::uint64_t position_index(std::uint32_t head, std::uint32_t slot) const {
    return std::uint64_t{head} * format.kv_capacity + slot;
  }
  std::span<std::uint32_t> position_words(std::uint32_t head, std::uint32_t slot) {
    const std::uint32_t words = kernels::tq_words_per_position(format.head_dim, format.bits);
    return {codes.data() + position_index(head, slot) * words, words};
  }
  std::span<const std::uint32_t> position_words(std::uint32_t head, std::uint32_t slot) const {
    const std::uint32_t words = kernels::tq_words_per_position(format.head_dim, format.bits);
    return {codes.data() + position_index(head, slot) * words, words};
  }
  std::span<double> position_norms(std::uint32_t head, std::uint32_t slot) {
    const std::uint32_t count = kernels::tq_norms_per_position(format.head_dim);
    return {norms.data() + position_index(head, slot) * count, count};
  }
  std::span<const double> position_norms(std::uint32_t head, std::uint32_t slot) const {
    const std::uint32_t count = kernels::tq_norms_per_position(format.head_dim);
    return {norms.data() + position_index(head, slot) * count, count};
  }
};

// record_tq_encode on the host: writes the rows of `src` ([num_kv_heads,
// n_tokens, head_dim]) into `cache`, with the op's validation.
inline void tq_encode(tq_cache& cache, std::span<const float> src,
                      const kernels::tq_encode_args& args) {
  const kernels::tq_cache_format& f = cache.format;
  kernels::validate_tq_encode(f, args, src.size(), cache.codes.size(), cache.norms.size());
  // In a ring only the newest kv_capacity tokens survive the call.
  const std::uint32_t skipped =
      args.ring && args.n_tokens > f.kv_capacity ? args.n_tokens - f.kv_capacity : 0;
  for (std::uint32_t head = 0; head < f.num_kv_heads; ++head)
    for (std::uint32_t token = skipped; token < args.n_tokens; ++token) {
      const std::uint32_t slot =
          kernels::tq_slot(args.first_position + token, f.kv_capacity, args.ring);
      const std::size_t row = std::size_t{head} * args.n_tokens + token;
      const tq_encoded_row encoded = tq_encode_row(src.subspan(row * f.head_dim, f.head_dim),
                                                   f.bits, args.rotate, args.scale_factor_d512);
      std::span<std::uint32_t> words = cache.position_words(head, slot);
      for (std::uint32_t j = 0; j < f.head_dim; ++j)
        kernels::tq_set_code(words, f.bits, j, encoded.codes[j]);
      std::ranges::copy(encoded.norms, cache.position_norms(head, slot).begin());
    }
}

// The values one position of one head stands for, in the basis it was
// encoded in (rotated unless encoded with rotate = false): centroid * N /
// sqrt(D) for D <= 256, centroid * n_b / scale_factor_d512 for D = 512.
inline std::vector<double> tq_dequantize_position(const tq_cache& cache, std::uint32_t head,
                                                  std::uint32_t slot, float scale_factor_d512) {
  const kernels::tq_cache_format& f = cache.format;
  const tq::codebook cb = tq::codebook_for(f.bits);
  const std::span<const std::uint32_t> words = cache.position_words(head, slot);
  const std::span<const double> norms = cache.position_norms(head, slot);
  const std::uint32_t block = f.head_dim / static_cast<std::uint32_t>(norms.size());
  std::vector<double> values(f.head_dim);
  for (std::uint32_t j = 0; j < f.head_dim; ++j) {
    const double norm = norms[j / block];
    const double factor = norms.size() > 1
                              ? norm / kernels::tq_resolve_scale_factor(scale_factor_d512)
                              : norm / std::sqrt(static_cast<double>(f.head_dim));
    values[j] = double{cb.centroids[kernels::tq_get_code(words, f.bits, j)]} * factor;
  }
  return values;
}

// E[(u - centroid(code(u)))^2] for u with density `pdf` on [-support,
// support]: composite Simpson's rule on every decision cell, where the
// integrand is smooth (the centroid is constant inside a cell).
template <class Pdf>
double tq_distortion(const tq::codebook& cb, Pdf pdf, double support) {
  constexpr double step = 2e-3;  // Simpson's error ~ step^4: below 1e-10 relative here
  double total = 0;
  for (std::uint32_t i = 0; i < cb.levels(); ++i) {
    const double low = i == 0 ? -support : std::max(-support, double{cb.boundaries[i - 1]});
    const double high =
        i + 1 == cb.levels() ? support : std::min(support, double{cb.boundaries[i]});
    if (high <= low) continue;
    const int intervals = 2 * std::max(8, static_cast<int>(std::ceil((high - low) / step / 2)));
    const double c = cb.centroids[i], h = (high - low) / intervals;
    double sum = 0;
    for (int k = 0; k <= intervals; ++k) {
      const double u = low + k * h;
      const double weight = k == 0 || k == intervals ? 1 : k % 2 ? 4 : 2;
      sum += weight * (u - c) * (u - c) * pdf(u);
    }
    total += sum * h / 3;
  }
  return total;
}

// The Lloyd-Max distortion of a codebook for N(0,1) (tails beyond 12 sigma
// weigh below 1e-30).
inline double tq_gaussian_distortion(const tq::codebook& cb) {
  const auto normal = [](double u) {
    return std::exp(-0.5 * u * u) / std::sqrt(2 * std::numbers::pi);
  };
  return tq_distortion(cb, normal, 12.0);
}

// The density of one coordinate of a point drawn uniformly from the sphere
// of radius sqrt(n) in R^n: proportional to (1 - u^2/n)^((n-3)/2) on
// |u| < sqrt(n). That is the exact law of the quantizer inputs u of a
// Gaussian row (per norm block of n dims): u is the row scaled to norm
// sqrt(n), and the rotation keeps the law.
inline double tq_sphere_coordinate_pdf(double u, std::uint32_t n) {
  const double dim = n, t = 1 - u * u / dim;
  if (t <= 0) return 0;
  const double log_constant =
      std::lgamma(dim / 2) - std::lgamma((dim - 1) / 2) - 0.5 * std::log(std::numbers::pi * dim);
  return std::exp(log_constant + 0.5 * (dim - 3) * std::log(t));
}

// The half-width of the band around a decision boundary inside which an f32
// encoder may pick the neighbouring code: the device's u differs from the
// double reference's by the f32 rounding of the rotation (log2 D additions
// per element), the norm and the scaling, a few ulps of |u| <= ~5, i.e.
// below 1e-6; 1e-5 leaves a margin of ten.
inline constexpr double tq_tie_band = 1e-5;

// Whether `code` is an acceptable f32 encoding of u (u from the double
// reference): the reference's code, or its neighbour across a boundary
// closer to u than tq_tie_band.
inline bool tq_code_acceptable(const tq::codebook& cb, double u, std::uint32_t code) {
  const std::uint32_t want = tq_quantize(cb, u);
  if (code == want) return true;
  if (code + 1 == want) return std::abs(u - double{cb.boundaries[code]}) < tq_tie_band;
  if (code == want + 1) return std::abs(u - double{cb.boundaries[want]}) < tq_tie_band;
  return false;
}

// Rows f32 [rows, head_dim] whose quantizer inputs all lie at least
// `margin` from every decision boundary of the `bits` codebook, so every
// correct f32 encoder gives exactly the reference's codes. Each norm block
// holds Gaussian-like u (drawn, scaled to the block's sum of squares the
// encoder produces, and redrawn where too close to a boundary), times a
// random norm, then mapped back through R^-1 when `rotate`.
inline std::vector<float> tq_rows_clear_of_boundaries(std::mt19937_64& rng, std::uint32_t rows,
                                                      std::uint32_t head_dim, std::uint32_t bits,
                                                      bool rotate, float scale_factor_d512,
                                                      double margin = 1e-4) {
  const tq::codebook cb = tq::codebook_for(bits);
  const std::uint32_t blocks = kernels::tq_norms_per_position(head_dim);
  const std::uint32_t block = head_dim / blocks;
  // The sum of u^2 over a block: D for one block, 256 * scale_factor^2 for
  // blocks of the RMS rule.
  const double target =
      blocks > 1 ? std::pow(kernels::tq_resolve_scale_factor(scale_factor_d512), 2) : 1.0;
  const auto clear = [&](double u) {
    const auto it = std::lower_bound(cb.boundaries.begin(), cb.boundaries.end(), u,
                                     [](float b, double v) { return double{b} < v; });
    double distance = std::numeric_limits<double>::infinity();
    if (it != cb.boundaries.end()) distance = double{*it} - u;
    if (it != cb.boundaries.begin()) distance = std::min(distance, u - double{*(it - 1)});
    return distance >= margin;
  };
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> rms(0.25, 4.0);
  std::vector<float> out(std::size_t{rows} * head_dim);
  std::vector<double> u(block), y(head_dim);
  for (std::uint32_t r = 0; r < rows; ++r) {
    for (std::uint32_t b = 0; b < blocks; ++b) {
      for (double& v : u) v = normal(rng);
      for (bool done = false; !done;) {
        double sum_squares = 0;
        for (double v : u) sum_squares += v * v;
        const double to_target = std::sqrt(target * block / sum_squares);
        for (double& v : u) v *= to_target;
        done = true;
        for (double& v : u)
          if (!clear(v)) {
            v = normal(rng);
            done = false;
          }
      }
      const double block_rms = rms(rng);
      for (std::uint32_t j = 0; j < block; ++j)
        y[b * block + j] = u[j] * block_rms / std::sqrt(target);
    }
    if (rotate) unrotate_row(y);
    for (std::uint32_t j = 0; j < head_dim; ++j)
      out[std::size_t{r} * head_dim + j] = static_cast<float>(y[j]);
  }
  return out;
}

}  // namespace tessel::reference
