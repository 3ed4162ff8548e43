// A target: the device traits that change a kernel's GLSL text. The text of a
// variant is a pure function of (description, target), so `tessel dump` can
// write it for any target without a GPU.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tessel/dsl/scalar.hpp"

namespace tessel {

// One cooperative-matrix shape (M x N x K) with its operand types.
struct coopmat_shape {
  std::uint32_t m = 0, n = 0, k = 0;
  scalar_kind a = scalar_kind::f16, b = scalar_kind::f16, c = scalar_kind::f32,
              result = scalar_kind::f32;
  friend constexpr bool operator==(const coopmat_shape&, const coopmat_shape&) = default;
};

struct target {
  std::string_view name;
  std::uint32_t subgroup_size = 32;
  std::uint32_t push_constant_bytes = 128;
  std::uint32_t shared_memory_bytes = 32768;
  std::uint32_t max_workgroup_invocations = 1024;
  // VK_NV_cooperative_matrix shapes with subgroup scope; empty = none.
  std::array<coopmat_shape, 4> coopmat_shapes{};
  std::uint32_t coopmat_shape_count = 0;
  // Device capabilities kernels may rely on in this target's text.
  feature features = feature::none;

  constexpr bool has_coopmat() const { return coopmat_shape_count != 0; }
  constexpr bool has_coopmat_shape(const coopmat_shape& shape) const {
    for (std::uint32_t i = 0; i < coopmat_shape_count; ++i)
      if (coopmat_shapes[i] == shape) return true;
    return false;
  }
  friend constexpr bool operator==(const target&, const target&) = default;
};

namespace targets {

inline constexpr feature baseline_features =
    feature::float16_arithmetic | feature::int8_arithmetic | feature::int16_arithmetic |
    feature::int64_arithmetic | feature::storage_8bit | feature::storage_16bit |
    feature::subgroup_arithmetic | feature::uniform_standard_layout | feature::scalar_block_layout;

// Any conformant Vulkan 1.3 device with 16/8-bit storage, as lavapipe reports
// itself: 8-lane subgroups, 128-byte push constants, 32 KiB shared memory.
inline constexpr target portable{
    .name = "portable",
    .subgroup_size = 8,
    .push_constant_bytes = 128,
    .shared_memory_bytes = 32768,
    .max_workgroup_invocations = 1024,
    .coopmat_shapes = {},
    .coopmat_shape_count = 0,
    .features = baseline_features,
};

// NVIDIA Hopper/Ada/Ampere through the proprietary driver, as read on an H100.
inline constexpr target nvidia{
    .name = "nvidia",
    .subgroup_size = 32,
    .push_constant_bytes = 256,
    .shared_memory_bytes = 49152,
    .max_workgroup_invocations = 1024,
    .coopmat_shapes = {coopmat_shape{16, 16, 16, scalar_kind::f16, scalar_kind::f16,
                                     scalar_kind::f32, scalar_kind::f32},
                       coopmat_shape{16, 8, 16, scalar_kind::f16, scalar_kind::f16,
                                     scalar_kind::f32, scalar_kind::f32},
                       coopmat_shape{16, 8, 8, scalar_kind::f16, scalar_kind::f16, scalar_kind::f32,
                                     scalar_kind::f32}},
    .coopmat_shape_count = 3,
    .features = baseline_features | feature::cooperative_matrix_nv,
};

inline constexpr std::array<const target*, 2> predefined{&portable, &nvidia};

// The predefined target called `name`, or nullopt.
inline std::optional<target> find(std::string_view name) {
  for (const target* t : predefined)
    if (t->name == name) return *t;
  return std::nullopt;
}

}  // namespace targets
}  // namespace tessel
