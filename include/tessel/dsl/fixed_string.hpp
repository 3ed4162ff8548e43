// Compile-time strings: template-argument names (bindings, constants, fields)
// and variant names assembled from a kernel family's template parameters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <type_traits>

namespace tessel {

// A string usable as a template argument: `in<"Q", float>` names its binding.
template <std::size_t N>
struct fixed_string {
  char chars[N]{};

  constexpr fixed_string(const char (&text)[N]) { std::copy_n(text, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
  constexpr operator std::string_view() const { return view(); }
  constexpr std::size_t size() const { return N - 1; }
};

// A bounded string built in constant expressions (variant names).
template <std::size_t Capacity>
struct static_string {
  char chars[Capacity + 1]{};
  std::size_t length = 0;

  constexpr void append(std::string_view text) {
    for (char c : text) {
      if (length == Capacity) throw "tessel::static_string: capacity exceeded";
      chars[length++] = c;
    }
  }
  constexpr void append_number(long long value) {
    if (value < 0) {
      append("m");
      value = -value;
    }
    char digits[24]{};
    int count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (count > 0) append(std::string_view(&digits[--count], 1));
  }
  constexpr std::string_view view() const { return {chars, length}; }
  constexpr operator std::string_view() const { return view(); }
};

namespace detail {
constexpr void append_name_part(static_string<96>& out, std::string_view text) {
  out.append(text);
}
template <class Integer>
requires std::is_integral_v<Integer>
constexpr void append_name_part(static_string<96>& out, Integer value) {
  if constexpr (std::is_same_v<Integer, bool>) {
    out.append(value ? "1" : "0");
  } else {
    out.append_number(static_cast<long long>(value));
  }
}
}  // namespace detail

// name("fwht", "d", 256, "inverse") == "fwht_d256_inverse": a text part that
// follows another text part is separated by '_', a number is glued to the
// text before it, so "d", 256 reads as "d256".
template <class... Parts>
constexpr static_string<96> name(const Parts&... parts) {
  static_string<96> out;
  auto add = [&](const auto& part) {
    using part_type = std::decay_t<decltype(part)>;
    constexpr bool is_text = !std::is_integral_v<part_type>;
    if (is_text && out.length != 0) out.append("_");
    detail::append_name_part(out, part);
  };
  (add(parts), ...);
  return out;
}

}  // namespace tessel
