// Parameter blocks: reflection of a plain host struct, its GLSL layout
// (std430 or scalar) computed at compile time, and the checks that the host
// struct and the GPU block agree byte for byte.
//
//   struct DecodeParams { std::uint32_t num_heads; float scale; };
//   TESSEL_PARAMS(DecodeParams, num_heads, scale);
//   static_assert(tessel::layout<DecodeParams>::size == 8);
//   static_assert(tessel::layout<DecodeParams>::matches_host);
//
// `matches_host` instantiates one check per field; a field whose offsetof
// differs from its layout offset fails to compile inside
// `tessel::detail::field_offset_check<"Block", "field", layout_offset, host_offset>`,
// so the error names the block and the field.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/preprocessor/punctuation/comma_if.hpp>
#include <boost/preprocessor/seq/for_each_i.hpp>
#include <boost/preprocessor/stringize.hpp>
#include <boost/preprocessor/variadic/to_seq.hpp>

#include "tessel/dsl/fixed_string.hpp"
#include "tessel/dsl/scalar.hpp"

namespace tessel {

// Layout rules a block can be declared with.
enum class layout_rule : std::uint8_t { std430, scalar };

constexpr std::string_view rule_name(layout_rule r) {
  return r == layout_rule::std430 ? "std430" : "scalar";
}

namespace detail {

constexpr std::size_t round_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Size, alignment and GLSL spelling of one field type under a rule.
template <class T, layout_rule Rule>
struct type_layout;

template <scalar T, layout_rule Rule>
struct type_layout<T, Rule> {
  static constexpr std::size_t size = scalar_traits<T>::size;
  static constexpr std::size_t alignment = scalar_traits<T>::alignment;
  static constexpr std::size_t array_count = 0;
  static constexpr std::size_t array_stride = 0;
  static constexpr extension extensions = scalar_traits<T>::extensions;
  static constexpr scalar_kind kind = scalar_traits<T>::kind;
  static constexpr int components = 1;
  static std::string glsl() { return std::string(scalar_traits<T>::glsl); }
};

template <scalar C, int N, layout_rule Rule>
struct type_layout<vec<C, N>, Rule> {
  static constexpr std::size_t component = scalar_traits<C>::size;
  static constexpr std::size_t size = component * N;
  // std430: vec2 aligns to 2 components, vec3 and vec4 to 4. scalar: to one.
  static constexpr std::size_t alignment =
      Rule == layout_rule::scalar ? component : component * (N == 2 ? 2 : 4);
  static constexpr std::size_t array_count = 0;
  static constexpr std::size_t array_stride = 0;
  static constexpr extension extensions = scalar_traits<C>::extensions;
  static constexpr scalar_kind kind = scalar_traits<C>::kind;
  static constexpr int components = N;
  static std::string glsl() {
    constexpr scalar_kind k = scalar_traits<C>::kind;
    std::string prefix = k == scalar_kind::f32   ? ""
                         : k == scalar_kind::u32 ? "u"
                         : k == scalar_kind::i32 ? "i"
                         : k == scalar_kind::f16 ? "f16"
                         : k == scalar_kind::i64 ? "i64"
                         : k == scalar_kind::u64 ? "u64"
                                                 : "unsupported";
    return prefix + "vec" + std::to_string(N);
  }
};

template <class E, std::size_t Count, layout_rule Rule>
struct type_layout<E[Count], Rule> {
  using element = type_layout<E, Rule>;
  static_assert(element::array_count == 0, "tessel: arrays of arrays are not supported");
  // std430 and scalar both keep the element's own size as the stride (rounded
  // to its alignment); only std140 would round it up to 16.
  static constexpr std::size_t array_stride = round_up(element::size, element::alignment);
  static constexpr std::size_t size = array_stride * Count;
  static constexpr std::size_t alignment = element::alignment;
  static constexpr std::size_t array_count = Count;
  static constexpr extension extensions = element::extensions;
  static constexpr scalar_kind kind = element::kind;
  static constexpr int components = element::components;
  static std::string glsl() { return element::glsl(); }
};

}  // namespace detail

// One reflected field: its name, declared C++ type and host offsetof.
template <fixed_string Name, class T, std::size_t HostOffset>
struct field {
  static constexpr std::string_view name = Name.view();
  static constexpr fixed_string name_literal = Name;
  using type = T;
  static constexpr std::size_t host_offset = HostOffset;
};

// The reflection of a host struct, produced by TESSEL_PARAMS.
template <fixed_string Name, class Host, layout_rule Rule, class... Fields>
struct param_block {
  static constexpr std::string_view name = Name.view();
  static constexpr fixed_string name_literal = Name;
  static constexpr layout_rule rule = Rule;
  using host = Host;
  using fields = std::tuple<Fields...>;
};

// The runtime view of one field's layout (tools, tests, SPIR-V cross-checks).
struct field_layout {
  std::string_view name;
  std::string glsl_type;  // element type for arrays
  scalar_kind kind;
  int components;
  std::size_t offset;       // GLSL layout offset
  std::size_t host_offset;  // offsetof in the host struct
  std::size_t size;
  std::size_t array_count;   // 0 for a non-array field
  std::size_t array_stride;  // 0 for a non-array field
};

namespace detail {

template <class T>
using reflection_of = decltype(tessel_reflect(static_cast<const T*>(nullptr)));

template <class T>
concept reflected = requires {
  typename reflection_of<T>;
};

template <fixed_string Block, fixed_string Field, std::size_t LayoutOffset, std::size_t HostOffset>
struct field_offset_check {
  static_assert(LayoutOffset == HostOffset,
                "tessel: a parameter-block field's host offsetof differs from its GLSL layout "
                "offset; the block and field are named in this template's arguments");
  static constexpr bool value = true;
};

template <fixed_string Block, std::size_t LayoutSize, std::size_t HostSize>
struct block_size_check {
  static_assert(LayoutSize == HostSize,
                "tessel: a parameter block's GLSL layout size differs from sizeof of its host "
                "struct (trailing padding or a missing field); the block is named in this "
                "template's arguments");
  static constexpr bool value = true;
};

template <class Reflection, class Tuple = typename Reflection::fields>
struct compute_layout;

template <class Reflection, class... Fields>
struct compute_layout<Reflection, std::tuple<Fields...>> {
  static constexpr layout_rule rule = Reflection::rule;
  static constexpr std::size_t count = sizeof...(Fields);

  static constexpr std::array<std::size_t, count> offsets = [] {
    std::array<std::size_t, count> out{};
    std::size_t cursor = 0;
    std::size_t i = 0;
    ((cursor = round_up(cursor, type_layout<typename Fields::type, rule>::alignment),
      out[i++] = cursor, cursor += type_layout<typename Fields::type, rule>::size),
     ...);
    return out;
  }();
  static constexpr std::size_t alignment = [] {
    std::size_t a = 1;
    ((a = std::max(a, type_layout<typename Fields::type, rule>::alignment)), ...);
    return a;
  }();
  static constexpr std::size_t size = [] {
    if constexpr (count == 0) {
      return std::size_t{0};
    } else {
      using last = std::tuple_element_t<count - 1, std::tuple<Fields...>>;
      return round_up(offsets[count - 1] + type_layout<typename last::type, rule>::size, alignment);
    }
  }();
  static constexpr extension extensions =
      (extension::none | ... | type_layout<typename Fields::type, rule>::extensions);

  template <std::size_t... I>
  static constexpr bool check_fields(std::index_sequence<I...>) {
    return (
        field_offset_check<Reflection::name_literal,
                           std::tuple_element_t<I, std::tuple<Fields...>>::name_literal, offsets[I],
                           std::tuple_element_t<I, std::tuple<Fields...>>::host_offset>::value &&
        ... && true);
  }
  static constexpr bool offsets_agree = [] {
    std::size_t i = 0;
    bool ok = true;
    ((ok = ok && offsets[i++] == Fields::host_offset), ...);
    return ok;
  }();

  static std::vector<field_layout> describe() {
    std::vector<field_layout> out;
    std::size_t i = 0;
    (out.push_back(field_layout{Fields::name, type_layout<typename Fields::type, rule>::glsl(),
                                type_layout<typename Fields::type, rule>::kind,
                                type_layout<typename Fields::type, rule>::components, offsets[i++],
                                Fields::host_offset, type_layout<typename Fields::type, rule>::size,
                                type_layout<typename Fields::type, rule>::array_count,
                                type_layout<typename Fields::type, rule>::array_stride}),
     ...);
    return out;
  }
};

}  // namespace detail

// layout<T>: the GLSL layout of a reflected host struct under its declared rule.
template <class T>
requires detail::reflected<T>
struct layout {
  using reflection = detail::reflection_of<T>;
  using computed = detail::compute_layout<reflection>;

  static constexpr std::string_view name = reflection::name;
  static constexpr layout_rule rule = reflection::rule;
  static constexpr std::size_t size = computed::size;
  static constexpr std::size_t alignment = computed::alignment;
  static constexpr std::size_t field_count = computed::count;
  static constexpr auto offsets = computed::offsets;
  static constexpr extension extensions = computed::extensions;

  // True when every field's layout offset equals its offsetof and the total
  // equals sizeof(T). A mismatch is a compile error that names the field.
  static constexpr bool matches_host =
      computed::check_fields(std::make_index_sequence<computed::count>{}) &&
      detail::block_size_check<reflection::name_literal, size, sizeof(T)>::value;

  // Same comparison without the diagnostic (for code that reports, not stops).
  static constexpr bool offsets_agree = computed::offsets_agree && size == sizeof(T);

  static std::vector<field_layout> fields() { return computed::describe(); }
};

// The GLSL members of a block, one per line, indented by two spaces.
template <class T>
std::string glsl_members() {
  std::string out;
  for (const auto& f : layout<T>::fields()) {
    out += "  " + f.glsl_type + " " + std::string(f.name);
    if (f.array_count != 0) out += "[" + std::to_string(f.array_count) + "]";
    out += ";\n";
  }
  return out;
}

}  // namespace tessel

#define TESSEL_DETAIL_FIELD(r, HOST, i, FIELD) \
  BOOST_PP_COMMA_IF(                           \
      i)::tessel::field<BOOST_PP_STRINGIZE(FIELD), decltype(HOST::FIELD), offsetof(HOST, FIELD)>

#define TESSEL_DETAIL_PARAMS(HOST, RULE, ...)                                                    \
  [[maybe_unused]] constexpr ::tessel::param_block<                                              \
      #HOST, HOST, RULE,                                                                         \
      BOOST_PP_SEQ_FOR_EACH_I(TESSEL_DETAIL_FIELD, HOST, BOOST_PP_VARIADIC_TO_SEQ(__VA_ARGS__))> \
  tessel_reflect(const HOST*) {                                                                  \
    return {};                                                                                   \
  }

// Reflects HOST's fields (in declaration order) as a std430 parameter block.
// Use it in the namespace of HOST: the reflection is found by argument-
// dependent lookup.
#define TESSEL_PARAMS(HOST, ...) \
  TESSEL_DETAIL_PARAMS(HOST, ::tessel::layout_rule::std430, __VA_ARGS__)

// The same with the scalar layout (GL_EXT_scalar_block_layout): vectors and
// arrays are packed to their component alignment.
#define TESSEL_SCALAR_PARAMS(HOST, ...) \
  TESSEL_DETAIL_PARAMS(HOST, ::tessel::layout_rule::scalar, __VA_ARGS__)
