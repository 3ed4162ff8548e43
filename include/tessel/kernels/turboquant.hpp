// TurboQuant-compressed KV caches (KERNELS.md sections 9-12): the cache
// format shared by the encoder (tq_encode.hpp) and the decode kernels, its
// size helpers and validation, and the decode parameter blocks. The
// codebooks are tessel::tq (dsl/tq_codebooks.hpp), the rotation is fwht.hpp.
//
// Format of a cache of num_kv_heads x kv_capacity positions, head dim D and
// code width `bits` (KERNELS.md 12.4):
//   codes  uint32 words [num_kv_heads, kv_capacity, tq_words_per_position]:
//          4-bit codes as nibbles (8 per word), 5/6/8-bit codes as bytes (4 per
//          word, upper bits zero); coordinate 0 in the lowest bits, words
//          little-endian. Byte for byte this is KERNELS.md's u8
//          [Hkv, cap, D/2] (coordinate 2j in the low nibble of byte j) and
//          u8 [Hkv, cap, D]; words let kernels load four codes at once.
//   norms  f32 [num_kv_heads, kv_capacity, tq_norms_per_position]:
//          D <= 256: one block, the L2 norm N of the (rotated) row;
//          D = 512: two blocks of 256 dims, the RMS n_b of each.
// A stored value is centroid[code] * N / sqrt(D) (D <= 256) or
// centroid[code] * n_b / scale_factor_d512 (D = 512), in the rotated basis
// when the row was rotated. D = 64 and 128 follow the D = 256 rule (one
// norm per position, scaled by sqrt(D)), tessel's extension of KERNELS.md.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>

#include "tessel/dsl/layout.hpp"
#include "tessel/kernels/validate.hpp"

namespace tessel::kernels {

// The shape and code width of a TurboQuant cache (K or V).
struct tq_cache_format {
  std::uint32_t num_kv_heads = 0;
  std::uint32_t kv_capacity = 0;  // positions per KV head
  std::uint32_t head_dim = 0;     // 64, 128, 256 or 512
  std::uint32_t bits = 0;         // 4 (nibbles) or 5, 6, 8 (bytes)
};

// Dims per norm block: rows longer than this get one norm per block.
inline constexpr std::uint32_t tq_norm_block = 256;

// Bits a code occupies in the packed words: 4 or 8.
constexpr std::uint32_t tq_storage_bits(std::uint32_t bits) {
  return bits == 4 ? 4 : 8;
}
constexpr std::uint32_t tq_codes_per_word(std::uint32_t bits) {
  return 32 / tq_storage_bits(bits);
}
constexpr std::uint32_t tq_words_per_position(std::uint32_t head_dim, std::uint32_t bits) {
  return head_dim / tq_codes_per_word(bits);
}
constexpr std::uint32_t tq_norms_per_position(std::uint32_t head_dim) {
  return head_dim > tq_norm_block ? head_dim / tq_norm_block : 1;
}
// Bytes one position of one KV head takes, codes and norms: 4-bit D=256
// 132, D=512 264; 8-bit 260 and 520 (f16: 512 and 1,024).
constexpr std::uint64_t tq_bytes_per_position(std::uint32_t head_dim, std::uint32_t bits) {
  return 4 *
         (std::uint64_t{tq_words_per_position(head_dim, bits)} + tq_norms_per_position(head_dim));
}

// Bytes one token takes in one layer's K and V caches: num_kv_heads rows
// of each, stored as f16 (bits = 16) or as TurboQuant codes and norms
// (bits = 4, 5, 6 or 8). The hybrid cache is key_bits = 16 with a
// quantized value_bits.
constexpr std::uint64_t kv_row_bytes(std::uint32_t head_dim, std::uint32_t bits) {
  return bits == 16 ? 2 * std::uint64_t{head_dim} : tq_bytes_per_position(head_dim, bits);
}
constexpr std::uint64_t kv_bytes_per_token(std::uint32_t num_kv_heads, std::uint32_t head_dim,
                                           std::uint32_t key_bits, std::uint32_t value_bits) {
  return std::uint64_t{num_kv_heads} *
         (kv_row_bytes(head_dim, key_bits) + kv_row_bytes(head_dim, value_bits));
}
static_assert(kv_bytes_per_token(8, 256, 16, 16) == 8 * 1024);
static_assert(kv_bytes_per_token(8, 256, 4, 4) == 8 * 264);

// Element counts of the two buffers of a cache, and its total bytes.
constexpr std::uint64_t tq_code_words(const tq_cache_format& f) {
  return std::uint64_t{f.num_kv_heads} * f.kv_capacity * tq_words_per_position(f.head_dim, f.bits);
}
constexpr std::uint64_t tq_norm_count(const tq_cache_format& f) {
  return std::uint64_t{f.num_kv_heads} * f.kv_capacity * tq_norms_per_position(f.head_dim);
}
constexpr std::uint64_t tq_cache_bytes(const tq_cache_format& f) {
  return 4 * (tq_code_words(f) + tq_norm_count(f));
}

// The slot a position is stored in: position mod kv_capacity in a ring
// buffer, else the position itself (which must be < kv_capacity).
constexpr std::uint32_t tq_slot(std::uint32_t position, std::uint32_t kv_capacity, bool ring) {
  return ring ? position % kv_capacity : position;
}

// Code of `coordinate` in the words of one position, and its inverse: the
// host's statement of the packing the kernels implement.
constexpr std::uint32_t tq_get_code(std::span<const std::uint32_t> position_words,
                                    std::uint32_t bits, std::uint32_t coordinate) {
  const std::uint32_t per_word = tq_codes_per_word(bits);
  const std::uint32_t shift = tq_storage_bits(bits) * (coordinate % per_word);
  return (position_words[coordinate / per_word] >> shift) & ((1u << bits) - 1);
}
constexpr void tq_set_code(std::span<std::uint32_t> position_words, std::uint32_t bits,
                           std::uint32_t coordinate, std::uint32_t code) {
  const std::uint32_t per_word = tq_codes_per_word(bits);
  const std::uint32_t shift = tq_storage_bits(bits) * (coordinate % per_word);
  const std::uint32_t mask = ((1u << tq_storage_bits(bits)) - 1) << shift;
  std::uint32_t& word = position_words[coordinate / per_word];
  word = (word & ~mask) | ((code << shift) & mask);
}

// scale_factor_d512 (KERNELS.md 12.2, question Q10): 0 means the production
// value 1.0, so a zero-initialized argument never divides by zero; any other
// value must be finite and positive. Host ops pass the resolved value to the
// kernels, which therefore never see 0.
inline void validate_tq_scale_factor(std::string_view op, float scale_factor_d512) {
  require(std::isfinite(scale_factor_d512) && scale_factor_d512 >= 0, op, "scale_factor_d512",
          scale_factor_d512, "must be finite and >= 0 (0 means 1.0)");
}
constexpr float tq_resolve_scale_factor(float scale_factor_d512) {
  return scale_factor_d512 == 0 ? 1.0f : scale_factor_d512;
}

// The rules every op on a TurboQuant cache shares: a supported width and
// head dim, a non-empty cache, and buffers that 32-bit indices can address.
inline void validate_tq_cache_format(std::string_view op, const tq_cache_format& f) {
  require_one_of(op, "bits", f.bits, {4, 5, 6, 8});
  require_one_of(op, "head_dim", f.head_dim, {64, 128, 256, 512});
  require_positive(op, "num_kv_heads", f.num_kv_heads);
  require_positive(op, "kv_capacity", f.kv_capacity);
  require_32bit_indexable(
      op, "codes",
      checked_product(op, "codes size",
                      {f.num_kv_heads, f.kv_capacity, tq_words_per_position(f.head_dim, f.bits)}));
  require_32bit_indexable(
      op, "norms",
      checked_product(op, "norms size",
                      {f.num_kv_heads, f.kv_capacity, tq_norms_per_position(f.head_dim)}));
}

// TqParams, 48 bytes: 4-bit nibble-packed caches.
struct TqParams {
  std::uint32_t num_heads;
  std::uint32_t num_kv_heads;
  std::uint32_t head_dim;
  std::uint32_t kv_seq_len;
  std::uint32_t kv_capacity;
  float scale;
  std::uint32_t mask_type;
  std::uint32_t sliding_window;
  float softcap;  // 0 = off; else s = softcap * tanh(s / softcap)
  std::uint32_t nwg;
  std::uint32_t ring_start;
  float scale_factor_d512;  // D=512 block-norm scale; 0 means 1.0
};
TESSEL_PARAMS(TqParams, num_heads, num_kv_heads, head_dim, kv_seq_len, kv_capacity, scale,
              mask_type, sliding_window, softcap, nwg, ring_start, scale_factor_d512);
static_assert(layout<TqParams>::size == 48);
static_assert(layout<TqParams>::matches_host);

// TqHbParams, 60 bytes: 5/6/8-bit byte-packed caches and the hybrid f16-K +
// quantized-V cache.
struct TqHbParams {
  std::uint32_t num_heads;
  std::uint32_t num_kv_heads;
  std::uint32_t head_dim;
  std::uint32_t kv_seq_len;
  std::uint32_t kv_capacity;
  float scale;
  std::uint32_t mask_type;
  std::uint32_t sliding_window;
  float softcap;
  std::uint32_t nwg;
  std::uint32_t ring_start;
  float scale_factor_d512;
  std::uint32_t codebook_bits;  // 5, 6 or 8
  std::uint32_t fuse_fwht_pre;  // 1: the kernel rotates the raw query itself
  std::uint32_t nsg;            // subgroups per workgroup: 1, 2 or 4
};
TESSEL_PARAMS(TqHbParams, num_heads, num_kv_heads, head_dim, kv_seq_len, kv_capacity, scale,
              mask_type, sliding_window, softcap, nwg, ring_start, scale_factor_d512, codebook_bits,
              fuse_fwht_pre, nsg);
static_assert(layout<TqHbParams>::size == 60);
static_assert(layout<TqHbParams>::matches_host);

}  // namespace tessel::kernels
