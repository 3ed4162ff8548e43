// Scalar and vector element types: their host representation, GLSL spelling,
// size, alignment, and the GLSL extensions and device features they need.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

namespace tessel {

// IEEE binary16 stored as its bit pattern; arithmetic happens in float.
struct f16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(f16, f16) = default;
};

// bfloat16: the upper 16 bits of an f32. GLSL here has no bf16 type, so
// kernels read these as uint16_t and widen with `uint(bits) << 16`.
struct bf16 {
  std::uint16_t bits = 0;
  friend constexpr bool operator==(bf16, bf16) = default;
};

using f32 = float;
using u8 = std::uint8_t;
using u16 = std::uint16_t;
using u32 = std::uint32_t;
using i32 = std::int32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;

// A GLSL vector of N components (vec2/3/4, uvec*, ivec*). The host struct
// packs components tightly, as the scalar layout does; std430 aligns vec3
// and vec4 to 16 bytes, which the layout checks catch.
template <class Component, int N>
requires(N >= 2 && N <= 4) struct vec {
  Component v[N];
};

// Device capabilities a type (or a kernel) needs. Bit flags so a variant's
// requirements are one value the Vulkan layer can compare with the device.
enum class feature : std::uint32_t {
  none = 0,
  float16_arithmetic = 1u << 0,   // shaderFloat16
  int8_arithmetic = 1u << 1,      // shaderInt8
  int16_arithmetic = 1u << 2,     // shaderInt16
  int64_arithmetic = 1u << 3,     // shaderInt64
  storage_8bit = 1u << 4,         // storageBuffer8BitAccess
  storage_16bit = 1u << 5,        // storageBuffer16BitAccess
  subgroup_arithmetic = 1u << 6,  // subgroup basic + arithmetic + shuffle in compute
  cooperative_matrix_nv = 1u << 7,
  uniform_standard_layout = 1u << 8,  // uniformBufferStandardLayout (std430 UBOs)
  scalar_block_layout = 1u << 9,
};
constexpr feature operator|(feature a, feature b) {
  return static_cast<feature>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr feature operator&(feature a, feature b) {
  return static_cast<feature>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
constexpr feature& operator|=(feature& a, feature b) {
  return a = a | b;
}
constexpr bool has(feature set, feature f) {
  return (set & f) == f;
}

// GLSL extensions, as bit flags so a variant's set is computed at compile time
// and emitted in a fixed order.
enum class extension : std::uint32_t {
  none = 0,
  explicit_float16 = 1u << 0,
  explicit_int8 = 1u << 1,
  explicit_int16 = 1u << 2,
  explicit_int64 = 1u << 3,
  storage_8bit = 1u << 4,
  storage_16bit = 1u << 5,
  subgroup_basic = 1u << 6,
  subgroup_arithmetic = 1u << 7,
  subgroup_shuffle = 1u << 8,
  cooperative_matrix_nv = 1u << 9,
  scalar_block_layout = 1u << 10,
  control_flow_attributes = 1u << 11,  // [[unroll]]
};
constexpr extension operator|(extension a, extension b) {
  return static_cast<extension>(static_cast<std::uint32_t>(a) | static_cast<std::uint32_t>(b));
}
constexpr extension operator&(extension a, extension b) {
  return static_cast<extension>(static_cast<std::uint32_t>(a) & static_cast<std::uint32_t>(b));
}
constexpr extension& operator|=(extension& a, extension b) {
  return a = a | b;
}
constexpr bool has(extension set, extension e) {
  return (set & e) == e;
}

struct extension_name {
  extension flag;
  std::string_view glsl;
  feature needs;
};
inline constexpr extension_name extension_names[] = {
    {extension::explicit_float16, "GL_EXT_shader_explicit_arithmetic_types_float16",
     feature::float16_arithmetic},
    {extension::explicit_int8, "GL_EXT_shader_explicit_arithmetic_types_int8",
     feature::int8_arithmetic},
    {extension::explicit_int16, "GL_EXT_shader_explicit_arithmetic_types_int16",
     feature::int16_arithmetic},
    {extension::explicit_int64, "GL_EXT_shader_explicit_arithmetic_types_int64",
     feature::int64_arithmetic},
    {extension::storage_8bit, "GL_EXT_shader_8bit_storage", feature::storage_8bit},
    {extension::storage_16bit, "GL_EXT_shader_16bit_storage", feature::storage_16bit},
    {extension::subgroup_basic, "GL_KHR_shader_subgroup_basic", feature::subgroup_arithmetic},
    {extension::subgroup_arithmetic, "GL_KHR_shader_subgroup_arithmetic",
     feature::subgroup_arithmetic},
    {extension::subgroup_shuffle, "GL_KHR_shader_subgroup_shuffle", feature::subgroup_arithmetic},
    {extension::cooperative_matrix_nv, "GL_NV_cooperative_matrix", feature::cooperative_matrix_nv},
    {extension::scalar_block_layout, "GL_EXT_scalar_block_layout", feature::none},
    {extension::control_flow_attributes, "GL_EXT_control_flow_attributes", feature::none},
};

// The runtime tag of an element type (used by type-erased views, .npy I/O and
// error messages).
enum class scalar_kind : std::uint8_t { f16, bf16, f32, u8, u16, u32, i32, u64, i64, boolean };

constexpr std::string_view kind_name(scalar_kind k) {
  switch (k) {
    case scalar_kind::f16:
      return "f16";
    case scalar_kind::bf16:
      return "bf16";
    case scalar_kind::f32:
      return "f32";
    case scalar_kind::u8:
      return "u8";
    case scalar_kind::u16:
      return "u16";
    case scalar_kind::u32:
      return "u32";
    case scalar_kind::i32:
      return "i32";
    case scalar_kind::u64:
      return "u64";
    case scalar_kind::i64:
      return "i64";
    case scalar_kind::boolean:
      return "bool";
  }
  return "?";
}

constexpr std::size_t kind_size(scalar_kind k) {
  switch (k) {
    case scalar_kind::u8:
    case scalar_kind::boolean:
      return 1;
    case scalar_kind::f16:
    case scalar_kind::bf16:
    case scalar_kind::u16:
      return 2;
    case scalar_kind::u64:
    case scalar_kind::i64:
      return 8;
    default:
      return 4;
  }
}

// scalar_traits<T>: everything the emitter and the layout rules know of T.
template <class T>
struct scalar_traits;

#define TESSEL_DETAIL_SCALAR(TYPE, KIND, GLSL, EXTENSIONS) \
  template <>                                              \
  struct scalar_traits<TYPE> {                             \
    static constexpr scalar_kind kind = scalar_kind::KIND; \
    static constexpr std::string_view glsl = GLSL;         \
    static constexpr std::size_t size = sizeof(TYPE);      \
    static constexpr std::size_t alignment = sizeof(TYPE); \
    static constexpr extension extensions = EXTENSIONS;    \
  }

TESSEL_DETAIL_SCALAR(f16, f16, "float16_t", extension::explicit_float16 | extension::storage_16bit);
// bf16 has no GLSL type in this toolchain: its storage is uint16_t.
TESSEL_DETAIL_SCALAR(bf16, bf16, "uint16_t", extension::explicit_int16 | extension::storage_16bit);
TESSEL_DETAIL_SCALAR(float, f32, "float", extension::none);
TESSEL_DETAIL_SCALAR(std::uint8_t, u8, "uint8_t",
                     extension::explicit_int8 | extension::storage_8bit);
TESSEL_DETAIL_SCALAR(std::uint16_t, u16, "uint16_t",
                     extension::explicit_int16 | extension::storage_16bit);
TESSEL_DETAIL_SCALAR(std::uint32_t, u32, "uint", extension::none);
TESSEL_DETAIL_SCALAR(std::int32_t, i32, "int", extension::none);
TESSEL_DETAIL_SCALAR(std::uint64_t, u64, "uint64_t", extension::explicit_int64);
TESSEL_DETAIL_SCALAR(std::int64_t, i64, "int64_t", extension::explicit_int64);
#undef TESSEL_DETAIL_SCALAR

template <class T>
concept scalar = requires {
  scalar_traits<T>::kind;
};

// The features a set of extensions needs on the device.
constexpr feature features_for(extension set) {
  feature out = feature::none;
  for (const auto& e : extension_names)
    if (has(set, e.flag)) out |= e.needs;
  return out;
}

// --- host-side conversions -------------------------------------------------

// f32 -> f16, round to nearest even, overflow to infinity, NaN stays NaN.
constexpr f16 to_f16(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t exponent = (x >> 23) & 0xFFu;
  std::uint32_t mantissa = x & 0x7FFFFFu;
  if (exponent == 0xFFu)
    return {static_cast<std::uint16_t>(sign | 0x7C00u | (mantissa ? 0x200u : 0u))};
  const int e = static_cast<int>(exponent) - 127 + 15;
  if (e >= 31) return {static_cast<std::uint16_t>(sign | 0x7C00u)};
  if (e <= 0) {
    if (e < -10) return {static_cast<std::uint16_t>(sign)};
    mantissa |= 0x800000u;
    const int shift = 14 - e;
    std::uint32_t half = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return {static_cast<std::uint16_t>(sign | half)};
  }
  std::uint32_t half = (static_cast<std::uint32_t>(e) << 10) | (mantissa >> 13);
  const std::uint32_t rest = mantissa & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into inf
  return {static_cast<std::uint16_t>(sign | half)};
}

constexpr float to_float(f16 value) {
  const std::uint32_t sign = (value.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (value.bits >> 10) & 0x1Fu;
  std::uint32_t mantissa = value.bits & 0x3FFu;
  if (exponent == 0x1Fu) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);
    int e = -1;
    do {
      ++e;
      mantissa <<= 1;
    } while ((mantissa & 0x400u) == 0);
    return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(112 - e) << 23) |
                                ((mantissa & 0x3FFu) << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// f32 -> bf16, round to nearest even; NaN becomes the quiet NaN 0x7FC0.
constexpr bf16 to_bf16(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return {0x7FC0};
  const std::uint32_t rounding = 0x7FFFu + ((x >> 16) & 1u);
  return {static_cast<std::uint16_t>((x + rounding) >> 16)};
}

constexpr float to_float(bf16 value) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(value.bits) << 16);
}

}  // namespace tessel
