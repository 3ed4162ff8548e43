// Flash-attention prefill (KERNELS.md sections 3-6): the parameter blocks.
// The kernels themselves are built on these blocks by the prefill issue; the
// blocks are fixed now because hosts, tools and docs depend on their layout.
#pragma once

#include <cstdint>

#include "tessel/dsl/layout.hpp"

namespace tessel::kernels {

// AttnParams, 160 bytes. Strides are in elements, 64-bit so that row * stride
// cannot overflow at 65536 x 65536; the inner (head-dim) stride is 1.
struct AttnParams {
  std::int32_t batch;
  std::int32_t num_heads;
  std::int32_t head_dim;
  std::int32_t query_len;
  std::int32_t key_len;
  std::int32_t gqa_factor;  // num_heads / num_kv_heads
  float scale;              // softmax scale; log2(e) is applied in-kernel, never folded in here
  float softcapping;
  std::int32_t num_query_tiles;          // ceil(query_len / BQ)
  std::int32_t num_key_tiles;            // ceil(key_len / BK)
  std::int32_t num_query_tiles_aligned;  // query_len / BQ
  std::int32_t num_key_tiles_aligned;    // key_len / BK
  std::int32_t query_len_rem;            // query_len % BQ
  std::int32_t key_len_rem;              // key_len % BK
  std::int32_t query_offset;             // absolute position of query row 0 (causal)
  std::int32_t pad;                      // keeps the stride arrays 8-byte aligned; always 0
  std::int64_t q_strides[3];             // batch, head, row
  std::int64_t k_strides[3];
  std::int64_t v_strides[3];
  std::int64_t o_strides[3];
};
TESSEL_PARAMS(AttnParams, batch, num_heads, head_dim, query_len, key_len, gqa_factor, scale,
              softcapping, num_query_tiles, num_key_tiles, num_query_tiles_aligned,
              num_key_tiles_aligned, query_len_rem, key_len_rem, query_offset, pad, q_strides,
              k_strides, v_strides, o_strides);
static_assert(layout<AttnParams>::size == 160);
static_assert(layout<AttnParams>::matches_host);

// AttnMaskParams, 24 bytes: batch, head and row strides of the mask in
// elements (column stride 1). A rank-2 broadcast mask has (0, 0, key_len).
struct AttnMaskParams {
  std::int64_t mask_strides[3];
};
TESSEL_PARAMS(AttnMaskParams, mask_strides);
static_assert(layout<AttnMaskParams>::size == 24);
static_assert(layout<AttnMaskParams>::matches_host);

}  // namespace tessel::kernels
