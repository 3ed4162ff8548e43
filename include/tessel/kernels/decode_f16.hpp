// Single-query decode over an f16 KV cache (KERNELS.md sections 7 and 11.2):
// the parameter block. The kernels are built on it by the f16 decode issue.
#pragma once

#include <cstdint>

#include "tessel/dsl/layout.hpp"

namespace tessel::kernels {

// VecF16Params, 36 bytes.
struct VecF16Params {
  std::uint32_t num_heads;
  std::uint32_t num_kv_heads;
  std::uint32_t head_dim;
  std::uint32_t kv_seq_len;   // valid positions, > 0
  std::uint32_t kv_capacity;  // allocated positions per KV head (its stride), >= kv_seq_len
  float scale;
  std::uint32_t mask_type;       // 0 none, 1 causal, 2 sliding window
  std::uint32_t sliding_window;  // window length for mask_type 2
  std::uint32_t ring_start;      // physical slot of the oldest entry once the ring wrapped
};
TESSEL_PARAMS(VecF16Params, num_heads, num_kv_heads, head_dim, kv_seq_len, kv_capacity, scale,
              mask_type, sliding_window, ring_start);
static_assert(layout<VecF16Params>::size == 36);
static_assert(layout<VecF16Params>::matches_host);

}  // namespace tessel::kernels
