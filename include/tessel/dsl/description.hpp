// The vocabulary of a kernel description: buffer bindings, specialization
// constants, workgroup size, compile-time geometry and GLSL snippets, and the
// concept a description satisfies.
//
//   template <int D>
//   struct my_kernel {
//     static constexpr auto name = tessel::name("my_kernel", "d", D);
//     using params    = MyParams;                       // optional
//     using bindings  = tessel::bindings<tessel::in<"x", float>, tessel::out<"y", float>>;
//     using constants = tessel::constants<tessel::spec<"inverse", bool, 0>>;   // optional
//     using geometry  = tessel::geometry<tessel::constant<"D", D>>;           // optional
//     using workgroup = tessel::workgroup<tessel::subgroup_lanes>;
//     using snippets  = tessel::snippet_list<tessel::snippets::subgroup_sum>; // optional
//     static constexpr std::string_view body = R"glsl( void main() { ... } )glsl";
//   };
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "tessel/dsl/fixed_string.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/scalar.hpp"
#include "tessel/dsl/target.hpp"

namespace tessel {

// --- buffer bindings ---------------------------------------------------------

enum class access : std::uint8_t { read, write, read_write };

constexpr std::string_view access_name(access a) {
  return a == access::read ? "in" : a == access::write ? "out" : "inout";
}

namespace detail {
template <class Element, class Wide>
constexpr bool whole_elements() {
  if constexpr (std::is_void_v<Wide>) {
    return true;
  } else {
    return sizeof(Wide) % sizeof(Element) == 0;
  }
}
}  // namespace detail

// A storage buffer of `Element`s, bound at its position in `bindings<...>`.
// `Wide` (optional, a vec<u32, N> or u32) declares a second GLSL view of the
// same binding, `<name>_wide[]`, for vector loads of packed data: f16 rows
// read 8 at a time as uvec4. The host still passes a buffer of `Element`s.
template <fixed_string Name, class Element, access Mode, class Wide = void>
requires scalar<Element>
struct buffer_binding {
  static constexpr std::string_view name = Name.view();
  static constexpr fixed_string name_literal = Name;
  using element = Element;
  using wide = Wide;
  static constexpr access mode = Mode;
  static_assert(detail::whole_elements<Element, Wide>(),
                "tessel: a wide view must hold a whole number of elements");
};

template <fixed_string Name, class Element, class Wide = void>
using in = buffer_binding<Name, Element, access::read, Wide>;
template <fixed_string Name, class Element, class Wide = void>
using out = buffer_binding<Name, Element, access::write, Wide>;
template <fixed_string Name, class Element, class Wide = void>
using inout = buffer_binding<Name, Element, access::read_write, Wide>;

template <class... Buffers>
struct bindings {
  static constexpr std::size_t count = sizeof...(Buffers);
  using list = std::tuple<Buffers...>;
};

// --- specialization constants ------------------------------------------------

// A run-time switch compiled into the pipeline (VkSpecializationInfo). Types:
// bool, std::int32_t, std::uint32_t, float. `Id` is the constant_id.
template <fixed_string Name, class T, std::uint32_t Id, T Default = T{}>
requires(std::same_as<T, bool> || std::same_as<T, std::int32_t> || std::same_as<T, std::uint32_t> ||
         std::same_as<T, float>) struct spec {
  static constexpr std::string_view name = Name.view();
  using type = T;
  static constexpr std::uint32_t id = Id;
  static constexpr T default_value = Default;
};

template <class... Specs>
struct constants {
  using list = std::tuple<Specs...>;
};

// --- workgroup ---------------------------------------------------------------

// A workgroup dimension equal to (a multiple of) the target's subgroup size.
struct lanes {
  std::uint32_t multiple = 1;
};
inline constexpr lanes subgroup_lanes{1};

struct extent3 {
  std::uint32_t x = 1, y = 1, z = 1;
  constexpr std::uint64_t count() const { return std::uint64_t{x} * y * z; }
  friend constexpr bool operator==(const extent3&, const extent3&) = default;
};

// Largest grid x extent every Vulkan device supports (maxComputeWorkGroupCount).
inline constexpr std::uint32_t max_grid_x = 65535;

// A grid of `rows` workgroups: along x up to max_grid_x, then along y. Kernels
// recover the row as gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x
// and return when it is past the end.
constexpr extent3 row_grid(std::uint64_t rows) {
  if (rows <= max_grid_x) return {static_cast<std::uint32_t>(rows), 1, 1};
  return {max_grid_x, static_cast<std::uint32_t>((rows + max_grid_x - 1) / max_grid_x), 1};
}

namespace detail {
template <auto V>
constexpr std::uint32_t resolve_extent(const target& t) {
  if constexpr (std::same_as<std::decay_t<decltype(V)>, lanes>) {
    return t.subgroup_size * V.multiple;
  } else {
    static_assert(V > 0, "tessel: a workgroup dimension must be positive");
    return static_cast<std::uint32_t>(V);
  }
}
}  // namespace detail

template <auto X, auto Y = 1, auto Z = 1>
struct workgroup {
  static constexpr extent3 resolve(const target& t) {
    return {detail::resolve_extent<X>(t), detail::resolve_extent<Y>(t),
            detail::resolve_extent<Z>(t)};
  }
};

// --- compile-time geometry ---------------------------------------------------

// A named compile-time value emitted as a GLSL `const` (tile sizes, head dim).
template <fixed_string Name, auto Value>
struct constant {
  static constexpr std::string_view name = Name.view();
  static constexpr auto value = Value;
};

template <class... Constants>
struct geometry {
  using list = std::tuple<Constants...>;
};

// --- text --------------------------------------------------------------------

// `text` with every occurrence of `from` replaced by `to`: GLSL written once
// for several buffers or caches, with a placeholder for the name.
inline std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at)) {
    text.replace(at, from.size(), to);
    at += to.size();
  }
  return text;
}

// --- snippets ----------------------------------------------------------------

// A snippet is a struct with `static std::string glsl(const target&)` (or a
// `static constexpr std::string_view text`), `static constexpr extension
// extensions`, and optionally `using requires_snippets = snippet_list<...>`.
template <class... Snippets>
struct snippet_list {
  using list = std::tuple<Snippets...>;
};

template <class S>
std::string snippet_text(const target& t) {
  if constexpr (requires { S::glsl(t); }) {
    return S::glsl(t);
  } else {
    return std::string(S::text);
  }
}

// --- the description concept ----------------------------------------------

namespace detail {
template <class T>
struct is_bindings : std::false_type {};
template <class... B>
struct is_bindings<bindings<B...>> : std::true_type {};
}  // namespace detail

template <class D>
concept kernel_description = requires {
  { std::string_view(D::name) } -> std::same_as<std::string_view>;
  typename D::bindings;
  typename D::workgroup;
  { D::workgroup::resolve(targets::portable) } -> std::same_as<extent3>;
}
&&detail::is_bindings<typename D::bindings>::value &&
    (
        requires { {std::string_view(D::body)}; } ||
        requires(const target& t) {
          { D::body(t) } -> std::convertible_to<std::string>;
        });

// Optional members, with their defaults.
namespace detail {
template <class D>
struct params_member {
  using type = void;
};
template <class D>
requires requires {
  typename D::params;
}
struct params_member<D> {
  using type = typename D::params;
};
template <class D>
struct constants_member {
  using type = constants<>;
};
template <class D>
requires requires {
  typename D::constants;
}
struct constants_member<D> {
  using type = typename D::constants;
};
template <class D>
struct geometry_member {
  using type = geometry<>;
};
template <class D>
requires requires {
  typename D::geometry;
}
struct geometry_member<D> {
  using type = typename D::geometry;
};
template <class D>
struct snippets_member {
  using type = snippet_list<>;
};
template <class D>
requires requires {
  typename D::snippets;
}
struct snippets_member<D> {
  using type = typename D::snippets;
};
}  // namespace detail

template <class D>
using params_of = typename detail::params_member<D>::type;
template <class D>
using constants_of = typename detail::constants_member<D>::type;
template <class D>
using geometry_of = typename detail::geometry_member<D>::type;
template <class D>
using snippets_of = typename detail::snippets_member<D>::type;

// Bytes of shared memory a variant declares for a target (0 when silent).
template <class D>
constexpr std::uint32_t shared_bytes(const target& t) {
  if constexpr (requires { D::shared_bytes(t); }) {
    return D::shared_bytes(t);
  } else {
    return 0;
  }
}

// Whether a variant's shared memory and workgroup fit a target. Usable in
// static_assert against the predefined targets:
//   static_assert(tessel::fits<prefill<96>>(tessel::targets::portable));
template <kernel_description D>
constexpr bool fits(const target& t) {
  return shared_bytes<D>(t) <= t.shared_memory_bytes &&
         D::workgroup::resolve(t).count() <= t.max_workgroup_invocations;
}

// The GLSL body of a description for a target.
template <kernel_description D>
std::string body_text(const target& t) {
  if constexpr (requires { D::body(t); }) {
    return std::string(D::body(t));
  } else {
    return std::string(D::body);
  }
}

}  // namespace tessel
