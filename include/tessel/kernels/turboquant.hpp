// Decode over TurboQuant-compressed KV caches (KERNELS.md sections 9-12): the
// parameter blocks. The encoder and decode kernels are built on them by the
// TurboQuant issue; the rotation kernels live in fwht.hpp.
#pragma once

#include <cstdint>

#include "tessel/dsl/layout.hpp"

namespace tessel::kernels {

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
