// The tile classifier of the prefill (KERNELS.md 6): one byte per (query
// tile, key tile) of a mask, in the prefill kernel's tile shape for the head
// dim, so the kernel can skip work without changing a single output bit.
//
//   0  every cell blocked (additive -inf, boolean 0): the tile is skipped;
//      its probabilities would all be exactly 0.
//   2  every cell attended with bias 0 (additive +-0, boolean nonzero): the
//      mask is not read; adding 0 changes no score.
//   1  anything else (finite biases, mixed, NaN).
//
// Only cells inside [query_len, key_len] count, and every one of them is
// examined (the seed's 64-key tiles looked at 32 columns, KERNELS.md Q5).
// Layout: [planes, ceil(query_len / BQ), ceil(key_len / BK)], one plane for
// a rank-2 mask, batch * num_heads planes ((b, h) at b * num_heads + h) for
// a rank-4 mask. The classes depend only on the mask, so a mask shared by
// many layers is classified once.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// PrefillBlkParams, 40 bytes.
struct PrefillBlkParams {
  std::int32_t query_len;
  std::int32_t key_len;
  std::int32_t num_heads;        // splits the plane index of a rank-4 mask into (batch, head)
  std::int32_t pad;              // keeps mask_strides 8-byte aligned; always 0
  std::int64_t mask_strides[3];  // batch, head, row, as in AttnMaskParams
};
TESSEL_PARAMS(PrefillBlkParams, query_len, key_len, num_heads, pad, mask_strides);
static_assert(layout<PrefillBlkParams>::size == 40);
static_assert(layout<PrefillBlkParams>::matches_host);

// The class values, as the kernel and the reference write them.
enum class tile_class : std::uint8_t { skip = 0, mixed = 1, full = 2 };

namespace detail {

// How one mask cell marks its tile: ATTENDED when it lets its key through,
// NOT_PLAIN when it is anything but an attend with bias 0.
template <class M>
std::string classify_cell_glsl() {
  if constexpr (std::same_as<M, u8>) {
    return "uint cell_flags(uint i) { return mask[i] != uint8_t(0) ? ATTENDED : NOT_PLAIN; }\n";
  } else {
    const std::string to_float =
        std::same_as<M, bf16> ? "bf16_to_float(mask[i])" : "float(mask[i])";
    // NaN compares unequal to both, so it lands in class 1 and the kernel
    // adds it, as it would without classes.
    return "uint cell_flags(uint i) {\n  const float bias = " + to_float +
           ";\n  return (bias != uintBitsToFloat(0xFF800000u) ? ATTENDED : 0u) |\n"
           "         (bias != 0.0 ? NOT_PLAIN : 0u);\n}\n";
  }
}

inline constexpr std::string_view prefill_blk_main = R"glsl(
shared uint tile_flags;

void main() {
  const uint key_tile = gl_WorkGroupID.x;
  const uint query_tile = gl_WorkGroupID.y;
  const uint plane = gl_WorkGroupID.z;
  const uint heads = uint(params.num_heads);
  const uint base = (plane / heads) * uint(params.mask_strides[0]) +
                    (plane % heads) * uint(params.mask_strides[1]);
  const uint row_stride = uint(params.mask_strides[2]);
  const uint first_row = query_tile * TILE_ROWS;
  const uint first_key = key_tile * TILE_KEYS;
  const uint rows = min(TILE_ROWS, uint(params.query_len) - first_row);
  const uint keys = min(TILE_KEYS, uint(params.key_len) - first_key);
  if (gl_LocalInvocationIndex == 0u) tile_flags = 0u;
  barrier();
  uint flags = 0u;
  for (uint cell = gl_LocalInvocationIndex; cell < rows * keys; cell += THREADS)
    flags |= cell_flags(base + (first_row + cell / keys) * row_stride + first_key + cell % keys);
  if (flags != 0u) atomicOr(tile_flags, flags);
  barrier();
  if (gl_LocalInvocationIndex == 0u) {
    const uint found = tile_flags;
    const uint value = (found & ATTENDED) == 0u ? 0u : (found & NOT_PLAIN) == 0u ? 2u : 1u;
    blk[(plane * gl_NumWorkGroups.y + query_tile) * gl_NumWorkGroups.x + key_tile] =
        uint8_t(value);
  }
}
)glsl";

}  // namespace detail

// The classifier for masks of element type M (f16/bf16 additive, u8
// boolean). The tile shape is a pair of specialization constants (the seed's
// ids 400/401), set from the consumer's prefill_geometry_for(head_dim).
template <class M>
requires std::same_as<M, f16> || std::same_as<M, bf16> || std::same_as<M, u8>
struct prefill_blk {
  static constexpr auto name = tessel::name("prefill_blk", kind_name(scalar_traits<M>::kind));
  static constexpr std::uint32_t threads = 64;
  using params = PrefillBlkParams;
  using bindings = tessel::bindings<in<"mask", M>, out<"blk", u8>>;
  using constants = tessel::constants<spec<"TILE_ROWS", std::uint32_t, 400, 32u>,
                                      spec<"TILE_KEYS", std::uint32_t, 401, 16u>>;
  using geometry = tessel::geometry<constant<"THREADS", threads>>;
  using workgroup = tessel::workgroup<threads>;
  using snippets = std::conditional_t<std::same_as<M, bf16>,
                                      snippet_list<snippets::bf16_conversion>, snippet_list<>>;
  static constexpr std::uint32_t shared_bytes(const target&) { return sizeof(std::uint32_t); }
  static std::string body(const target&) {
    return "\nconst uint ATTENDED = 1u;\nconst uint NOT_PLAIN = 2u;\n" +
           detail::classify_cell_glsl<M>() + std::string(detail::prefill_blk_main);
  }
};

using prefill_blk_variants = variant_list<prefill_blk<f16>, prefill_blk<bf16>, prefill_blk<u8>>;

// The problem, the mask's element count and, when given, blk's.
inline void validate_prefill_blk(const prefill_problem& p, std::uint64_t mask_elements,
                                 std::optional<std::uint64_t> blk_elements) {
  constexpr std::string_view op = "prefill_blk";
  validate_prefill_problem(p);
  const prefill_sizes need = prefill_sizes_of(p);
  require_32bit_indexable(op, "mask", need.mask);
  require_elements(op, "mask", mask_elements, need.mask);
  require_32bit_indexable(op, "blk", need.blk);
  if (blk_elements) require_elements(op, "blk", *blk_elements, need.blk);
}

// Records the classification of `mask` (shaped as p.mask_rank says) into
// `blk` (prefill_sizes_of(p).blk bytes) for the prefill of p.
template <class M>
requires std::same_as<M, f16> || std::same_as<M, bf16> || std::same_as<M, u8>
void record_prefill_blk(vk::recorder& rec, const prefill_problem& p, const vk::buffer<M>& mask,
                        const vk::buffer<u8>& blk) {
  validate_prefill_blk(p, mask.size(), blk.size());
  const prefill_geometry g = prefill_geometry_for(p.head_dim);
  const PrefillParams strides = prefill_params(p);
  PrefillBlkParams params{
      static_cast<std::int32_t>(p.query_len),
      static_cast<std::int32_t>(p.key_len),
      static_cast<std::int32_t>(p.num_heads),
      0,
      {strides.mask_strides[0], strides.mask_strides[1], strides.mask_strides[2]}};
  const vk::spec_value spec[] = {{400, g.query_rows}, {401, g.keys}};
  const extent3 grid{static_cast<std::uint32_t>(ceil_div(p.key_len, g.keys)),
                     static_cast<std::uint32_t>(ceil_div(p.query_len, g.query_rows)),
                     static_cast<std::uint32_t>(prefill_blk_planes(p))};
  rec.dispatch<prefill_blk<M>>(params, spec, grid, mask, blk);
}

}  // namespace tessel::kernels
