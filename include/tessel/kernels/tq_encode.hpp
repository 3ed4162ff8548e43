// The TurboQuant encoder (KERNELS.md 12.2-12.5): writes new K or V rows into
// a compressed cache (format in turboquant.hpp).
//
// Per row x (one token of one KV head, f32, D = head_dim):
//   y = R(x) = H(s * x) (rotate, the default), or y = x (the "no-FWHT" path
//       of the hybrid V cache, KERNELS.md 11.1);
//   norm: D <= 256: N = |y|, u = y * sqrt(D) / N;
//         D = 512: n_b = RMS of y over block b (dims 256b .. 256b+255),
//                  u = y * scale_factor_d512 / n_b;
//         a norm <= 1e-10 counts as zero: u = 0, so every code is n/2 - 1;
//   code_j = number of codebook boundaries strictly below u_j (branch-free
//            bisection over the literal tables of tessel::tq, so ties go to
//            the lower code and NaN gives 0);
//   codes and norms are stored at slot = position mod kv_capacity (ring) or
//   slot = position.
// Rows come as f32 [num_kv_heads, n_tokens, head_dim]; token t has position
// first_position + t. One decode step is n_tokens = 1, a prompt any count.
#pragma once

#include <bit>
#include <cstdint>
#include <numbers>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/dsl/tq_codebooks.hpp"
#include "tessel/kernels/turboquant.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// TqEncodeParams, 24 bytes.
struct TqEncodeParams {
  std::uint32_t num_kv_heads;
  std::uint32_t n_tokens;
  std::uint32_t kv_capacity;
  std::uint32_t first_position;
  std::uint32_t ring;       // 1: slot = position mod kv_capacity
  float scale_factor_d512;  // resolved: never 0
};
TESSEL_PARAMS(TqEncodeParams, num_kv_heads, n_tokens, kv_capacity, first_position, ring,
              scale_factor_d512);
static_assert(layout<TqEncodeParams>::size == 24);
static_assert(layout<TqEncodeParams>::matches_host);

// How rows go into the cache.
struct tq_encode_args {
  std::uint32_t n_tokens = 0;
  std::uint32_t first_position = 0;
  // Ring buffer: slot = position mod kv_capacity, and when n_tokens exceeds
  // kv_capacity only the newest kv_capacity tokens are written (the others
  // would be overwritten within the same call). Else every position must be
  // < kv_capacity.
  bool ring = false;
  // Rotate rows by R = H(s * .) before quantizing (K and V of the TQ caches);
  // false quantizes the raw rows (the hybrid V cache). Decode must rotate Q
  // iff K was rotated and undo the rotation of the output iff V was.
  bool rotate = true;
  float scale_factor_d512 = 0;  // D = 512 only; 0 means 1.0
};

// One workgroup (a logical group of 32 lanes, each holding D/32 contiguous
// elements) per row. The code width and the rotation are specialization
// constants: one pipeline per (bits, rotate) pair in use.
template <int D>
struct tq_encode {
  static_assert(D >= 64 && D <= static_cast<int>(snippets::hadamard_max_dim) && (D & (D - 1)) == 0,
                "tq_encode: head_dim must be a power of two in [64, 512]");
  static constexpr auto name = tessel::name("tq_encode", "d", D);
  // Lanes sharing a norm block: D = 512 has two blocks, one per half-group.
  static constexpr std::uint32_t norm_lanes = D > static_cast<int>(tq_norm_block) ? 16 : 32;
  // sqrt(D) for a power of two: 2^(k/2), times sqrt(2) when k is odd.
  static constexpr double sqrt_d = double(1u << (std::countr_zero(unsigned(D)) / 2)) *
                                   (std::countr_zero(unsigned(D)) % 2 ? std::numbers::sqrt2 : 1.0);
  using params = TqEncodeParams;
  using bindings =
      tessel::bindings<in<"src", float>, out<"codes", std::uint32_t>, out<"norms", float>>;
  using constants =
      tessel::constants<spec<"bits", std::uint32_t, 0, 4u>, spec<"rotate", bool, 1, true>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                                    constant<"FWHT_EPT", static_cast<std::uint32_t>(D / 32)>,
                                    constant<"FWHT_GROUPS", 1u>, constant<"GROUP_SUM_GROUPS", 1u>,
                                    constant<"NORM_LANES", norm_lanes>,
                                    constant<"NORMS_PER_POSITION", tq_norms_per_position(D)>,
                                    constant<"SQRT_D", static_cast<float>(sqrt_d)>,
                                    constant<"INV_SQRT_D", static_cast<float>(1 / sqrt_d)>>;
  using workgroup = tessel::workgroup<32>;
  using snippets = snippet_list<snippets::hadamard_signs, snippets::fwht_butterflies,
                                snippets::group_sum, snippets::tq_codebooks>;
  static constexpr extension extensions = extension::subgroup_basic | extension::subgroup_shuffle;
  static constexpr std::uint32_t shared_bytes(const target&) { return (D + 32) * sizeof(float); }
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  // Both early exits are uniform per workgroup, so the whole group leaves
  // before any barrier or shuffle.
  if (row >= params.num_kv_heads * params.n_tokens) return;
  const uint head = row / params.n_tokens;
  const uint token = row - head * params.n_tokens;
  // In a ring a later token of this call lands in the same slot: only the
  // newest kv_capacity tokens are written, so no two workgroups share a slot.
  if (params.ring != 0u && params.n_tokens - token > params.kv_capacity) return;
  const uint position = params.first_position + token;
  const uint slot = params.ring != 0u ? position % params.kv_capacity : position;
  const uint lane = gl_LocalInvocationID.x;
  const uint first = lane * FWHT_EPT;

  float v[FWHT_EPT];
  for (uint j = 0u; j < FWHT_EPT; ++j) v[j] = src[row * D + first + j];
  if (rotate) {
    for (uint j = 0u; j < FWHT_EPT; ++j) v[j] *= hadamard_sign(first + j);
    fwht_group(v, 0u, lane);
    for (uint j = 0u; j < FWHT_EPT; ++j) v[j] *= INV_SQRT_D;
  }

  // The norm of this lane's block, and the factor into the codebook domain.
  float sum_squares = 0.0;
  for (uint j = 0u; j < FWHT_EPT; ++j) sum_squares += v[j] * v[j];
  sum_squares = group_sum(sum_squares, 0u, lane, NORM_LANES);
  const float norm = D > 256u ? sqrt(sum_squares * (1.0 / 256.0)) : sqrt(sum_squares);
  const float numerator = D > 256u ? params.scale_factor_d512 : SQRT_D;
  const float scale = norm > 1e-10 ? numerator / norm : 0.0;

  const uint storage_bits = bits == 4u ? 4u : 8u;
  const uint codes_per_word = 32u / storage_bits;
  const uint position_index = head * params.kv_capacity + slot;
  const uint position_word = position_index * (D / codes_per_word);
  uint code[FWHT_EPT];
  for (uint j = 0u; j < FWHT_EPT; ++j) code[j] = tq_quantize(bits, v[j] * scale);
  if (FWHT_EPT >= codes_per_word) {
    // Whole words per lane.
    for (uint w = 0u; w < FWHT_EPT / codes_per_word; ++w) {
      uint word = 0u;
      for (uint k = 0u; k < codes_per_word; ++k)
        word |= code[w * codes_per_word + k] << (storage_bits * k);
      codes[position_word + first / codes_per_word + w] = word;
    }
  } else {
    // A word spans 2 or 4 neighbouring lanes (always inside one subgroup):
    // their parts occupy disjoint bits, so OR them together.
    const uint lanes_per_word = codes_per_word / FWHT_EPT;
    uint part = 0u;
    for (uint j = 0u; j < FWHT_EPT; ++j)
      part |= code[j] << (storage_bits * ((first + j) % codes_per_word));
    for (uint delta = 1u; delta < lanes_per_word; delta <<= 1)
      part |= subgroupShuffleXor(part, delta);
    if (lane % lanes_per_word == 0u) codes[position_word + first / codes_per_word] = part;
  }
  if (lane % NORM_LANES == 0u)
    norms[position_index * NORMS_PER_POSITION + lane / NORM_LANES] = norm;
}
)glsl";
};

// The head dims shipped as variants.
using tq_encode_variants =
    variant_list<tq_encode<64>, tq_encode<128>, tq_encode<256>, tq_encode<512>>;

// Validation shared by the host op, the catalog and the reference.
inline void validate_tq_encode(const tq_cache_format& format, const tq_encode_args& args,
                               std::uint64_t src_elements, std::uint64_t code_words,
                               std::uint64_t norm_count) {
  constexpr std::string_view op = "tq_encode";
  validate_tq_cache_format(op, format);
  require_positive(op, "n_tokens", args.n_tokens);
  validate_tq_scale_factor(op, args.scale_factor_d512);
  const std::uint64_t end = std::uint64_t{args.first_position} + args.n_tokens;
  if (args.ring) {
    require(end - 1 <= UINT32_MAX, op, "first_position + n_tokens - 1", end - 1,
            "must fit 32 bits");
  } else {
    require(end <= format.kv_capacity, op, "first_position + n_tokens", end,
            "must be <= kv_capacity = " + std::to_string(format.kv_capacity) +
                " (positions beyond the cache need ring = true)");
  }
  const std::uint64_t src =
      checked_product(op, "src size", {format.num_kv_heads, args.n_tokens, format.head_dim});
  require_32bit_indexable(op, "src", src);
  require_elements(op, "src", src_elements, src);
  require_elements(op, "codes", code_words, tq_code_words(format));
  require_elements(op, "norms", norm_count, tq_norm_count(format));
}

// Records the encoding of `src` (f32 [num_kv_heads, n_tokens, head_dim])
// into the cache `codes` (tq_code_words(format) words) and `norms`
// (tq_norm_count(format) floats). Only the addressed slots are written.
// Everything is validated before anything is recorded.
inline void record_tq_encode(vk::recorder& rec, const vk::buffer<float>& src,
                             const vk::buffer<std::uint32_t>& codes, const vk::buffer<float>& norms,
                             const tq_cache_format& format, const tq_encode_args& args) {
  validate_tq_encode(format, args, src.size(), codes.size(), norms.size());
  with_head_dim<64, 128, 256, 512>("tq_encode", format.head_dim, [&](auto d) {
    const vk::spec_value spec[] = {{0, format.bits}, {1, args.rotate ? 1u : 0u}};
    const TqEncodeParams params{
        format.num_kv_heads, args.n_tokens,       format.kv_capacity,
        args.first_position, args.ring ? 1u : 0u, tq_resolve_scale_factor(args.scale_factor_d512)};
    rec.dispatch<tq_encode<decltype(d)::value>>(
        params, spec, row_grid(std::uint64_t{format.num_kv_heads} * args.n_tokens), src, codes,
        norms);
  });
}

}  // namespace tessel::kernels
