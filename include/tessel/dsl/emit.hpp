// The GLSL emitter: a description plus a target gives the complete text of one
// compute shader. Everything that is not the kernel's own body (version,
// extensions, workgroup size, specialization constants, geometry, parameter
// block, buffer declarations, snippets) is generated here from the
// description's types, so the host and GPU views cannot drift apart.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/scalar.hpp"
#include "tessel/dsl/target.hpp"

namespace tessel {

// Where a parameter block lives on a target.
enum class params_placement : std::uint8_t { none, push_constant, uniform_buffer };

constexpr std::string_view placement_name(params_placement p) {
  return p == params_placement::none            ? "none"
         : p == params_placement::push_constant ? "push_constant"
                                                : "uniform_buffer";
}

// Push constants when the block fits the target's limit, else a uniform
// buffer bound after the storage buffers.
constexpr params_placement place_params(std::size_t block_size, const target& t) {
  if (block_size == 0) return params_placement::none;
  return block_size <= t.push_constant_bytes ? params_placement::push_constant
                                             : params_placement::uniform_buffer;
}

namespace detail {

inline std::string glsl_float(float value) {
  char text[32];
  auto result = std::to_chars(text, text + sizeof text, value);
  std::string out(text, result.ptr);
  if (out.find_first_of(".en") == std::string::npos) out += ".0";
  return out;
}

template <class T>
std::string glsl_literal(T value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? "true" : "false";
  } else if constexpr (std::is_floating_point_v<T>) {
    return glsl_float(static_cast<float>(value));
  } else if constexpr (std::is_unsigned_v<T>) {
    return std::to_string(value) + "u";
  } else {
    return std::to_string(value);
  }
}

template <class T>
constexpr std::string_view glsl_constant_type() {
  if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "float";
  } else if constexpr (std::is_unsigned_v<T>) {
    return "uint";
  } else {
    return "int";
  }
}

template <class Tuple>
struct tuple_fold;
template <class... T>
struct tuple_fold<std::tuple<T...>> {
  template <class F>
  static void each(F&& f) {
    (f(std::type_identity<T>{}), ...);
  }
  template <class F>
  static constexpr auto reduce(F&& f, extension init) {
    return (init | ... | f(std::type_identity<T>{}));
  }
};

template <class S>
constexpr extension snippet_extensions() {
  extension out = S::extensions;
  if constexpr (requires { typename S::requires_snippets; }) {
    out |= tuple_fold<typename S::requires_snippets::list>::reduce(
        []<class R>(std::type_identity<R>) { return snippet_extensions<R>(); }, extension::none);
  }
  return out;
}

}  // namespace detail

// The GLSL extensions a variant needs independent of the target.
template <kernel_description D>
constexpr extension description_extensions() {
  extension out = extension::none;
  out |= detail::tuple_fold<typename D::bindings::list>::reduce(
      []<class B>(std::type_identity<B>) { return scalar_traits<typename B::element>::extensions; },
      extension::none);
  using params = params_of<D>;
  if constexpr (!std::is_void_v<params>) out |= layout<params>::extensions;
  out |= detail::tuple_fold<typename snippets_of<D>::list>::reduce(
      []<class S>(std::type_identity<S>) { return detail::snippet_extensions<S>(); },
      extension::none);
  if constexpr (requires { D::extensions; }) out |= D::extensions;
  if constexpr (!std::is_void_v<params>)
    if (layout<params>::rule == layout_rule::scalar) out |= extension::scalar_block_layout;
  return out;
}

template <kernel_description D>
constexpr std::size_t params_size() {
  if constexpr (std::is_void_v<params_of<D>>) {
    return 0;
  } else {
    return layout<params_of<D>>::size;
  }
}

// Device features a variant needs on a target.
template <kernel_description D>
constexpr feature required_features(const target& t) {
  feature out = features_for(description_extensions<D>());
  if (place_params(params_size<D>(), t) == params_placement::uniform_buffer)
    out |= feature::uniform_standard_layout;
  return out;
}

namespace detail {

// One object per snippet type: its address identifies the snippet.
template <class S>
inline constexpr char snippet_identity = 0;

template <class S>
void emit_snippet(std::string& out, const target& t, std::vector<const void*>& seen) {
  if constexpr (requires { typename S::requires_snippets; }) {
    tuple_fold<typename S::requires_snippets::list>::each(
        [&]<class R>(std::type_identity<R>) { emit_snippet<R>(out, t, seen); });
  }
  // A snippet required by two others is emitted once.
  if (std::find(seen.begin(), seen.end(), &snippet_identity<S>) != seen.end()) return;
  seen.push_back(&snippet_identity<S>);
  out += snippet_text<S>(t);
  if (!out.empty() && out.back() != '\n') out += '\n';
  out += '\n';
}

}  // namespace detail

// The complete GLSL text of variant D for target t.
template <kernel_description D>
std::string emit(const target& t) {
  std::string out;
  out += "#version 460\n";
  const params_placement placement = place_params(params_size<D>(), t);
  // glslang accepts std430 on a uniform block only under this extension; the
  // device needs uniformBufferStandardLayout (Vulkan 1.2) for it.
  const extension exts =
      description_extensions<D>() |
      (placement == params_placement::uniform_buffer ? extension::scalar_block_layout
                                                     : extension::none);
  for (const auto& e : extension_names)
    if (has(exts, e.flag)) out += "#extension " + std::string(e.glsl) + " : require\n";
  out += "\n// tessel variant " + std::string(std::string_view(D::name)) + ", target " +
         std::string(t.name) + ".\n// Generated from its C++ description; edit that, not this.\n\n";

  const extent3 wg = D::workgroup::resolve(t);
  out += "layout(local_size_x = " + std::to_string(wg.x) +
         ", local_size_y = " + std::to_string(wg.y) + ", local_size_z = " + std::to_string(wg.z) +
         ") in;\n\n";

  out += "const uint TARGET_SUBGROUP_SIZE = " + std::to_string(t.subgroup_size) + "u;\n";
  out += "const uint TARGET_SHARED_BYTES = " + std::to_string(t.shared_memory_bytes) + "u;\n";
  out += std::string("const bool TARGET_HAS_COOPMAT = ") + (t.has_coopmat() ? "true" : "false") +
         ";\n";
  detail::tuple_fold<typename geometry_of<D>::list>::each([&]<class C>(std::type_identity<C>) {
    using value_type = std::decay_t<decltype(C::value)>;
    out += "const " + std::string(detail::glsl_constant_type<value_type>()) + " " +
           std::string(C::name) + " = " + detail::glsl_literal(C::value) + ";\n";
  });
  out += '\n';

  detail::tuple_fold<typename constants_of<D>::list>::each([&]<class S>(std::type_identity<S>) {
    out += "layout(constant_id = " + std::to_string(S::id) + ") const " +
           std::string(detail::glsl_constant_type<typename S::type>()) + " " +
           std::string(S::name) + " = " + detail::glsl_literal(S::default_value) + ";\n";
  });

  using params = params_of<D>;
  if constexpr (!std::is_void_v<params>) {
    const std::string rule(rule_name(layout<params>::rule));
    out += "\n// parameter block " + std::string(layout<params>::name) + ", " +
           std::to_string(layout<params>::size) + " bytes, " + rule + "\n";
    if (placement == params_placement::push_constant) {
      out += "layout(push_constant, " + rule + ") uniform ";
    } else {
      out += "layout(set = 0, binding = " + std::to_string(D::bindings::count) + ", " + rule +
             ") uniform ";
    }
    out += std::string(layout<params>::name) + " {\n" + glsl_members<params>() + "} params;\n";
  }

  out += '\n';
  std::size_t binding = 0;
  detail::tuple_fold<typename D::bindings::list>::each([&]<class B>(std::type_identity<B>) {
    const std::string qualifier = B::mode == access::read    ? " readonly"
                                  : B::mode == access::write ? " writeonly"
                                                             : "";
    const std::string prefix =
        "layout(set = 0, binding = " + std::to_string(binding++) + ", std430) restrict" + qualifier;
    out += prefix + " buffer " + std::string(B::name) + "_buffer { " +
           std::string(scalar_traits<typename B::element>::glsl) + " " + std::string(B::name) +
           "[]; };\n";
    if constexpr (!std::is_void_v<typename B::wide>)
      out += prefix + " buffer " + std::string(B::name) + "_wide_buffer { " +
             detail::type_layout<typename B::wide, layout_rule::std430>::glsl() + " " +
             std::string(B::name) + "_wide[]; };\n";
  });
  out += '\n';

  std::vector<const void*> seen;
  detail::tuple_fold<typename snippets_of<D>::list>::each(
      [&]<class S>(std::type_identity<S>) { detail::emit_snippet<S>(out, t, seen); });

  out += body_text<D>(t);
  if (out.back() != '\n') out += '\n';
  return out;
}

}  // namespace tessel
