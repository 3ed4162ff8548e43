// The randomized Walsh-Hadamard rotation of TurboQuant (KERNELS.md 12.1, 12.6):
// in place on f32 rows [num_heads, head_dim].
//   plain:    y = H x
//   rotate:   y = R(x)   = H (s * x)   ("sign_premult", applied to Q)
//   unrotate: x = R^-1(y) = s * (H y)  ("sign_undo", applied to the output)
// H is the normalized transform (1/sqrt(D) folded in): symmetric, orthogonal
// and its own inverse, so unrotate(rotate(x)) == x.
#pragma once

#include <cstdint>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

enum class hadamard_mode : std::uint32_t { plain = 0, rotate = 1, unrotate = 2 };

constexpr std::string_view mode_name(hadamard_mode m) {
  return m == hadamard_mode::plain ? "plain" : m == hadamard_mode::rotate ? "rotate" : "unrotate";
}

// FwhtParams, 8 bytes.
struct FwhtParams {
  std::uint32_t head_dim;
  std::uint32_t num_heads;
};
TESSEL_PARAMS(FwhtParams, head_dim, num_heads);
static_assert(layout<FwhtParams>::size == 8);
static_assert(layout<FwhtParams>::matches_host);

// One workgroup per row: a logical group of 32 lanes, each holding D/32
// contiguous elements (snippets::fwht_butterflies).
template <int D>
struct fwht {
  static_assert(D >= 32 && D <= static_cast<int>(snippets::hadamard_max_dim) && (D & (D - 1)) == 0,
                "fwht: head_dim must be a power of two in [32, 512]");
  static constexpr auto name = tessel::name("fwht", "d", D);
  using params = FwhtParams;
  using bindings = tessel::bindings<inout<"data", float>>;
  using constants = tessel::constants<spec<"mode", std::uint32_t, 0, 0u>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                                    constant<"FWHT_EPT", static_cast<std::uint32_t>(D / 32)>,
                                    constant<"FWHT_GROUPS", 1u>>;
  using workgroup = tessel::workgroup<32>;
  using snippets = snippet_list<snippets::hadamard_signs, snippets::fwht_butterflies>;
  static constexpr std::uint32_t shared_bytes(const target&) { return D * sizeof(float); }
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  // Uniform per workgroup, so the whole group leaves before any barrier.
  if (row >= params.num_heads) return;
  const uint lane = gl_LocalInvocationID.x;
  const uint first = lane * FWHT_EPT;
  const uint base = row * D + first;
  float v[FWHT_EPT];
  for (uint j = 0u; j < FWHT_EPT; ++j)
    v[j] = data[base + j] * (mode == 1u ? hadamard_sign(first + j) : 1.0);
  fwht_group(v, 0u, lane);
  const float norm = inversesqrt(float(D));
  for (uint j = 0u; j < FWHT_EPT; ++j)
    data[base + j] = v[j] * norm * (mode == 2u ? hadamard_sign(first + j) : 1.0);
}
)glsl";
};

// The head dims shipped as variants.
using fwht_variants = variant_list<fwht<64>, fwht<128>, fwht<256>, fwht<512>>;

// Validation shared by the host op and the reference.
inline void validate_fwht(std::uint32_t num_heads, std::uint32_t head_dim, hadamard_mode mode,
                          std::uint64_t data_elements) {
  constexpr std::string_view op = "fwht";
  require_one_of(op, "head_dim", head_dim, {64, 128, 256, 512});
  require_positive(op, "num_heads", num_heads);
  require(static_cast<std::uint32_t>(mode) <= 2, op, "mode", static_cast<std::uint32_t>(mode),
          "must be 0 (plain), 1 (rotate) or 2 (unrotate)");
  const std::uint64_t elements = checked_product(op, "num_heads * head_dim", {num_heads, head_dim});
  require_32bit_indexable(op, "data", elements);
  require_elements(op, "data", data_elements, elements);
}

// Records the in-place rotation of `data` ([num_heads, head_dim] f32).
// Everything is validated before anything is recorded.
inline void record_fwht(vk::recorder& rec, const vk::buffer<float>& data, std::uint32_t num_heads,
                        std::uint32_t head_dim, hadamard_mode mode) {
  validate_fwht(num_heads, head_dim, mode, data.size());
  with_head_dim<64, 128, 256, 512>("fwht", head_dim, [&](auto d) {
    const vk::spec_value spec[] = {{0, static_cast<std::uint32_t>(mode)}};
    rec.dispatch<fwht<decltype(d)::value>>(FwhtParams{head_dim, num_heads}, spec,
                                           row_grid(num_heads), data);
  });
}

}  // namespace tessel::kernels
