// NumPy .npy files <-> tessel::tensor, so `tessel run` and tests exchange
// inputs and outputs with Python. Reads format versions 1.0, 2.0 and 3.0;
// writes 1.0 (2.0 only when a header would not fit 1.0's 16-bit length).
// Little-endian, C order only. Every malformed file throws tessel::error
// naming the file and the problem; nothing is trusted before it is checked
// (the header length, the shape's byte count in 64 bits, the data size).
//
//   tessel::tensor q = tessel::read_npy("q.npy");
//   tessel::write_npy("out.npy", result);   // atomic: temp file, then rename
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "tessel/dsl/scalar.hpp"
#include "tessel/error.hpp"
#include "tessel/tensor.hpp"

namespace tessel {

struct npy_read_options {
  // NumPy has no bfloat16: bf16 data travel as '<u2' bit patterns. Set this
  // to read '<u2' as bf16 instead of u16.
  bool u16_as_bf16 = false;
};

namespace detail::npy {

inline constexpr char magic[] = "\x93NUMPY";
inline constexpr std::size_t magic_size = 6;

struct dtype_name {
  std::string_view descr;
  scalar_kind kind;
};
// The first spelling of each kind is the one written.
inline constexpr dtype_name dtypes[] = {
    {"<f4", scalar_kind::f32}, {"<f2", scalar_kind::f16}, {"|u1", scalar_kind::u8},
    {"<u1", scalar_kind::u8},  {"<u2", scalar_kind::u16}, {"<i4", scalar_kind::i32},
    {"<u4", scalar_kind::u32}, {"<i8", scalar_kind::i64}, {"<u8", scalar_kind::u64},
};

inline std::string_view descr_of(scalar_kind kind) {
  // bf16 is stored as its bit pattern, as NumPy users keep it.
  if (kind == scalar_kind::bf16) return "<u2";
  for (const auto& d : dtypes)
    if (d.kind == kind) return d.descr;
  return {};
}

// A parser of the header: a Python dict literal with string keys whose values
// are strings, True/False, or tuples of integers.
class header_parser {
 public:
  header_parser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  struct result {
    std::string descr;
    bool fortran_order = false;
    std::vector<std::uint64_t> shape;
    bool has_descr = false, has_order = false, has_shape = false;
  };

  result parse() {
    result out;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        out.descr = string_literal();
        out.has_descr = true;
      } else if (key == "fortran_order") {
        out.fortran_order = boolean();
        out.has_order = true;
      } else if (key == "shape") {
        out.shape = int_tuple();
        out.has_shape = true;
      } else {
        fail("unexpected header key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail("expected ',' or '}' in the header");
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("trailing characters after the header dictionary");
    if (!out.has_descr || !out.has_order || !out.has_shape)
      fail("the header lacks one of 'descr', 'fortran_order', 'shape'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw error("npy " + file_, what); }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("malformed header: expected '") + c + "'");
    ++pos_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("malformed header: expected a quoted string");
    const std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("malformed header: unterminated string");
    std::string out(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return out;
  }
  bool boolean() {
    skip_space();
    if (text_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (text_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    fail("malformed header: 'fortran_order' is neither True nor False");
  }
  std::vector<std::uint64_t> int_tuple() {
    expect('(');
    std::vector<std::uint64_t> out;
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("malformed header: a shape entry is not a non-negative integer");
      std::uint64_t value = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const auto digit = static_cast<std::uint64_t>(peek() - '0');
        if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10)
          fail("a shape entry does not fit 64 bits");
        value = value * 10 + digit;
        ++pos_;
      }
      skip_space();
      if (peek() == 'L') ++pos_;  // Python 2 long literals
      out.push_back(value);
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') fail("malformed header: expected ',' or ')' in the shape");
    }
    ++pos_;
    return out;
  }

  std::string_view text_;
  const std::string& file_;
  std::size_t pos_ = 0;
};

inline std::uint32_t read_le(const std::byte* p, std::size_t n) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace detail::npy

// Decodes the bytes of a .npy file; `file` names it in error messages.
inline tensor parse_npy(std::span<const std::byte> bytes, const std::string& file,
                        npy_read_options options = {}) {
  namespace n = detail::npy;
  const auto fail = [&](const std::string& what) { throw error("npy " + file, what); };
  if (bytes.size() < n::magic_size + 2 || std::memcmp(bytes.data(), n::magic, n::magic_size) != 0)
    fail("not a .npy file (bad magic string)");
  const auto major = static_cast<unsigned>(bytes[6]);
  const auto minor = static_cast<unsigned>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail("unsupported format version " + std::to_string(major) + "." + std::to_string(minor));
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  const std::size_t prefix = 8 + length_bytes;
  if (bytes.size() < prefix) fail("truncated: the file ends inside the header length");
  const std::uint64_t header_length = n::read_le(bytes.data() + 8, length_bytes);
  if (header_length > bytes.size() - prefix)
    fail("truncated: the header claims " + std::to_string(header_length) + " bytes, the file has " +
         std::to_string(bytes.size() - prefix) + " after the prefix");
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + prefix),
                                static_cast<std::size_t>(header_length));
  const auto parsed = n::header_parser(header, file).parse();

  if (parsed.fortran_order) fail("fortran_order is True; only C-order arrays are supported");
  if (!parsed.descr.empty() && parsed.descr[0] == '>')
    fail("dtype '" + parsed.descr + "' is big-endian; only little-endian data are supported");
  std::string descr = parsed.descr;
  // '=' is native order, little-endian on every host tessel runs on.
  if (!descr.empty() && descr[0] == '=') descr[0] = '<';
  tensor out;
  bool known = false;
  for (const auto& d : n::dtypes)
    if (d.descr == descr) {
      out.kind = d.kind;
      known = true;
    }
  if (!known)
    fail("unsupported dtype '" + parsed.descr +
         "' (supported: <f4, <f2, |u1, <u2, <i4, <u4, <i8, <u8)");
  if (out.kind == scalar_kind::u16 && options.u16_as_bf16) out.kind = scalar_kind::bf16;

  std::uint64_t count = 1;
  for (auto d : parsed.shape) {
    if (d != 0 && count > std::numeric_limits<std::uint64_t>::max() / d)
      fail("shape " + tensor{out.kind, parsed.shape, {}}.shape_text() +
           " has more elements than fit 64 bits");
    count *= d;
  }
  const std::uint64_t item = kind_size(out.kind);
  if (count > std::numeric_limits<std::uint64_t>::max() / item)
    fail("shape " + tensor{out.kind, parsed.shape, {}}.shape_text() +
         " has a byte count that overflows 64 bits");
  const std::uint64_t data_bytes = count * item;
  const std::uint64_t available = bytes.size() - prefix - header_length;
  if (data_bytes != available)
    fail("data size mismatch: shape " + tensor{out.kind, parsed.shape, {}}.shape_text() + " of " +
         parsed.descr + " needs " + std::to_string(data_bytes) + " bytes, the file holds " +
         std::to_string(available));
  out.shape = parsed.shape;
  const auto* begin = bytes.data() + prefix + header_length;
  out.data.assign(begin, begin + data_bytes);
  return out;
}

inline tensor read_npy(const std::filesystem::path& path, npy_read_options options = {}) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("npy " + path.string(), "cannot open the file for reading");
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw error("npy " + path.string(), "read error");
  return parse_npy(std::as_bytes(std::span(raw)), path.string(), options);
}

// The bytes of a .npy file holding `t` (bf16 is written as '<u2' bit patterns).
inline std::vector<std::byte> encode_npy(const tensor& t) {
  const std::string_view descr = detail::npy::descr_of(t.kind);
  if (descr.empty())
    throw error("npy", "cannot write element type " + std::string(kind_name(t.kind)));
  if (t.data.size() != t.elements() * kind_size(t.kind))
    throw error("npy", "tensor holds " + std::to_string(t.data.size()) + " bytes, its shape " +
                           t.shape_text() + " needs " +
                           std::to_string(t.elements() * kind_size(t.kind)));
  std::string shape;
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  if (t.shape.size() == 1) shape += ",";  // Python's one-element tuple
  std::string header =
      "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  // NumPy pads the header with spaces and a newline so the data start on a
  // 64-byte boundary. Version 1.0 stores the header length in 16 bits.
  const auto padded = [&](std::size_t prefix) {
    return (prefix + header.size() + 1 + 63) / 64 * 64 - prefix;
  };
  const bool v1 = padded(10) <= 0xFFFF;
  const std::size_t prefix = v1 ? 10 : 12;
  header.append(padded(prefix) - header.size() - 1, ' ');
  header += '\n';
  std::vector<std::byte> out(prefix + header.size() + t.data.size());
  std::memcpy(out.data(), detail::npy::magic, detail::npy::magic_size);
  out[6] = std::byte{static_cast<unsigned char>(v1 ? 1 : 2)};
  out[7] = std::byte{0};
  for (std::size_t i = 0; i < prefix - 8; ++i)
    out[8 + i] = std::byte{static_cast<unsigned char>((header.size() >> (8 * i)) & 0xFF)};
  std::memcpy(out.data() + prefix, header.data(), header.size());
  if (!t.data.empty())
    std::memcpy(out.data() + prefix + header.size(), t.data.data(), t.data.size());
  return out;
}

// Writes `t` to `path` atomically: a temporary file next to it, renamed over
// `path` once complete, so a failure never leaves a partial file behind.
inline void write_npy(const std::filesystem::path& path, const tensor& t) {
  const auto bytes = encode_npy(t);
  std::filesystem::path temp = path;
  temp += ".partial";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw error("npy " + path.string(), "cannot open a temporary file for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(temp, ignored);
      throw error("npy " + path.string(), "write error");
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw error("npy " + path.string(), "cannot rename the temporary file: " + ec.message());
  }
}

}  // namespace tessel
