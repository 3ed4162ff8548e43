// The type-erased view of a kernel variant, and lists of variants. The Vulkan
// layer, the command-line tool and the tests work on `variant_info`, built
// once per description from its types.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/emit.hpp"
#include "tessel/dsl/layout.hpp"

namespace tessel {

struct binding_info {
  std::string_view name;
  scalar_kind element;
  access mode;
};

struct spec_info {
  std::string_view name;
  std::uint32_t id;
  scalar_kind type;  // boolean, i32, u32 or f32
  std::uint32_t default_bits;
};

struct block_info {
  std::string_view name;
  std::size_t size;
  std::size_t alignment;
  layout_rule rule;
  std::vector<field_layout> fields;
};

// The run-time description of parameter block T.
template <class T>
block_info describe_block() {
  return {layout<T>::name, layout<T>::size, layout<T>::alignment, layout<T>::rule,
          layout<T>::fields()};
}

struct variant_info {
  std::string_view name;
  std::vector<binding_info> bindings;
  std::vector<spec_info> constants;
  std::optional<block_info> params;
  std::string (*glsl)(const target&);
  extent3 (*workgroup)(const target&);
  std::uint32_t (*shared_bytes)(const target&);
  feature (*features)(const target&);

  params_placement placement(const target& t) const {
    return place_params(params ? params->size : 0, t);
  }
  // The uniform-buffer binding of the parameter block, when it is one.
  std::uint32_t params_binding() const { return static_cast<std::uint32_t>(bindings.size()); }
  bool fits(const target& t) const {
    return shared_bytes(t) <= t.shared_memory_bytes &&
           workgroup(t).count() <= t.max_workgroup_invocations;
  }
};

namespace detail {

template <class T>
constexpr scalar_kind spec_kind() {
  if constexpr (std::is_same_v<T, bool>) {
    return scalar_kind::boolean;
  } else if constexpr (std::is_same_v<T, float>) {
    return scalar_kind::f32;
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    return scalar_kind::i32;
  } else {
    return scalar_kind::u32;
  }
}

// Specialization data are 32-bit words; a bool is VkBool32.
template <class T>
constexpr std::uint32_t spec_bits(T value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value ? 1u : 0u;
  } else {
    return std::bit_cast<std::uint32_t>(value);
  }
}

template <class D>
variant_info make_info() {
  variant_info info{};
  info.name = std::string_view(D::name);
  tuple_fold<typename D::bindings::list>::each([&]<class B>(std::type_identity<B>) {
    info.bindings.push_back({B::name, scalar_traits<typename B::element>::kind, B::mode});
  });
  tuple_fold<typename constants_of<D>::list>::each([&]<class S>(std::type_identity<S>) {
    info.constants.push_back(
        {S::name, S::id, spec_kind<typename S::type>(), spec_bits(S::default_value)});
  });
  using params = params_of<D>;
  if constexpr (!std::is_void_v<params>) {
    info.params = describe_block<params>();
  }
  info.glsl = &emit<D>;
  info.workgroup = &D::workgroup::resolve;
  info.shared_bytes = &shared_bytes<D>;
  info.features = &required_features<D>;
  return info;
}

}  // namespace detail

// The type-erased view of description D (built once, never destroyed).
template <kernel_description D>
const variant_info& info() {
  static const variant_info instance = detail::make_info<D>();
  return instance;
}

// A compile-time list of variants; `for_each` visits each description type.
template <kernel_description... Ds>
struct variant_list {
  static constexpr std::size_t size = sizeof...(Ds);

  template <class F>
  static void for_each(F&& f) {
    (f(std::type_identity<Ds>{}), ...);
  }
  static std::vector<const variant_info*> infos() { return {&info<Ds>()...}; }
};

// Concatenation of variant lists.
template <class... Lists>
struct join_variants;
template <class List>
struct join_variants<List> {
  using type = List;
};
template <class... A, class... B, class... Rest>
struct join_variants<variant_list<A...>, variant_list<B...>, Rest...> {
  using type = typename join_variants<variant_list<A..., B...>, Rest...>::type;
};
template <class... Lists>
using join_variants_t = typename join_variants<Lists...>::type;

}  // namespace tessel
