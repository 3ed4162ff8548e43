// .npy reading and writing: round trips of every dtype with random data,
// headers written by hand as NumPy writes them, and every malformed file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "tessel/npy.hpp"

namespace {

using tessel::scalar_kind;
using tessel::tensor;

std::vector<std::byte> bytes_of(std::string_view text) {
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  return {p, p + text.size()};
}

// A file with a version-`major` prefix, `header` padded to 64 bytes, then `data`.
std::vector<std::byte> build(std::string header, std::string_view data, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string file = "\x93NUMPY";
  file += static_cast<char>(major);
  file += '\0';
  for (std::size_t i = 0; i < prefix - 8; ++i)
    file += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  file += header;
  file += data;
  return bytes_of(file);
}

tensor random_tensor(scalar_kind kind, std::vector<std::uint64_t> shape, std::uint32_t seed) {
  tensor t = tensor::zeros(kind, std::move(shape));
  std::mt19937 rng(seed);
  for (auto& b : t.data) b = static_cast<std::byte>(rng() & 0xFF);
  return t;
}

void expect_error(const std::vector<std::byte>& file, const std::string& fragment) {
  try {
    tessel::parse_npy(file, "bad.npy");
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const tessel::error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("bad.npy"), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

class NpyRoundTrip : public ::testing::TestWithParam<scalar_kind> {};

TEST_P(NpyRoundTrip, EncodeThenParseKeepsKindShapeAndBytes) {
  const scalar_kind kind = GetParam();
  const std::uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (const auto& shape : std::vector<std::vector<std::uint64_t>>{
           {}, {1}, {7}, {3, 5}, {2, 3, 4}, {0, 4}, {2, 1, 3, 5}}) {
    const tensor t = random_tensor(kind, shape, seed);
    const auto file = tessel::encode_npy(t);
    const std::size_t data_offset = file.size() - t.data.size();
    EXPECT_EQ(data_offset % 64, 0u) << "data must start on a 64-byte boundary";
    const tensor back =
        tessel::parse_npy(file, "roundtrip.npy", {.u16_as_bf16 = kind == scalar_kind::bf16});
    EXPECT_EQ(back.kind, kind);
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(back.data, t.data);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryDtype, NpyRoundTrip,
                         ::testing::Values(scalar_kind::f32, scalar_kind::f16, scalar_kind::bf16,
                                           scalar_kind::u8, scalar_kind::u16, scalar_kind::i32,
                                           scalar_kind::u32, scalar_kind::i64, scalar_kind::u64),
                         [](const auto& info) {
                           return std::string(tessel::kind_name(info.param));
                         });

TEST(Npy, FileRoundTripIsAtomicAndLeavesNoTemporary) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("tessel_npy_" + std::to_string(std::random_device{}()));
  std::filesystem::create_directories(dir);
  const tensor t = random_tensor(scalar_kind::f32, {4, 6}, 7);
  tessel::write_npy(dir / "a.npy", t);
  const tensor back = tessel::read_npy(dir / "a.npy");
  EXPECT_EQ(back.data, t.data);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
  std::filesystem::remove_all(dir);
}

TEST(Npy, MissingFileNamesIt) {
  try {
    tessel::read_npy("/nonexistent/dir/x.npy");
    FAIL();
  } catch (const tessel::error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.npy"), std::string::npos);
  }
}

TEST(Npy, WrittenHeaderIsWhatNumPyWrites) {
  const tensor t = random_tensor(scalar_kind::f32, {3}, 1);
  const auto file = tessel::encode_npy(t);
  const std::string text(reinterpret_cast<const char*>(file.data()), file.size());
  EXPECT_EQ(text.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  EXPECT_NE(text.find("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }"),
            std::string::npos);
  const tensor m = random_tensor(scalar_kind::u8, {2, 3}, 1);
  const auto mfile = tessel::encode_npy(m);
  const std::string mtext(reinterpret_cast<const char*>(mfile.data()), mfile.size());
  EXPECT_NE(mtext.find("'descr': '|u1'"), std::string::npos);
  EXPECT_NE(mtext.find("'shape': (2, 3), }"), std::string::npos);
}

TEST(Npy, HandBuiltHeaders) {
  const float values[2] = {1.5f, -2.0f};
  const std::string_view data(reinterpret_cast<const char*>(values), sizeof values);
  // Double quotes, no trailing comma, keys in another order, version 2 and 3.
  for (int major : {1, 2, 3}) {
    const tensor t = tessel::parse_npy(
        build("{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}", data, major),
        "h.npy");
    EXPECT_EQ(t.kind, scalar_kind::f32);
    EXPECT_EQ(t.shape, (std::vector<std::uint64_t>{2}));
    EXPECT_EQ(t.as<float>()[1], -2.0f);
  }
  // A scalar: shape ().
  const tensor s = tessel::parse_npy(
      build("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", data.substr(0, 4)), "s.npy");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.as<float>()[0], 1.5f);
  // '<u1' and '=f4' are accepted spellings; '<u2' maps to u16 unless bf16 is asked for.
  EXPECT_EQ(tessel::parse_npy(
                build("{'descr': '<u1', 'fortran_order': False, 'shape': (8,), }", data), "u.npy")
                .kind,
            scalar_kind::u8);
  EXPECT_EQ(tessel::parse_npy(
                build("{'descr': '=f4', 'fortran_order': False, 'shape': (2,), }", data), "n.npy")
                .kind,
            scalar_kind::f32);
  const auto u2 = build("{'descr': '<u2', 'fortran_order': False, 'shape': (4,), }", data);
  EXPECT_EQ(tessel::parse_npy(u2, "u2.npy").kind, scalar_kind::u16);
  EXPECT_EQ(tessel::parse_npy(u2, "u2.npy", {.u16_as_bf16 = true}).kind, scalar_kind::bf16);
}

TEST(NpyErrors, BadMagic) {
  expect_error(bytes_of("NOTNUMPY\x01\x00\x00\x00"), "magic");
  expect_error(bytes_of("\x93NUM"), "magic");
  expect_error({}, "magic");
}

TEST(NpyErrors, UnsupportedVersion) {
  auto file = build("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", "");
  file[6] = std::byte{4};
  expect_error(file, "version 4.0");
}

TEST(NpyErrors, Truncated) {
  const std::string data(8, 'x');
  const auto file = build("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data);
  // Inside the header length, inside the header, inside the data.
  expect_error({file.begin(), file.begin() + 9}, "truncated");
  expect_error({file.begin(), file.begin() + 40}, "truncated");
  expect_error({file.begin(), file.end() - 1}, "data size mismatch");
}

TEST(NpyErrors, ExtraData) {
  expect_error(build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "12345"),
               "data size mismatch");
}

TEST(NpyErrors, FortranOrder) {
  expect_error(build("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", "1234"),
               "fortran_order");
}

TEST(NpyErrors, BigEndian) {
  expect_error(build("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", "1234"),
               "big-endian");
}

TEST(NpyErrors, UnsupportedDtype) {
  for (const char* descr : {"<f8", "|b1", "<c8", "|O", "<U4"})
    expect_error(
        build(std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (1,), }",
              "12345678"),
        "unsupported dtype");
}

TEST(NpyErrors, ShapeOverflow) {
  // Elements overflow 64 bits.
  expect_error(build("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, "
                     "4294967296), }",
                     ""),
               "64 bits");
  // Elements fit, bytes do not.
  expect_error(
      build("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905,), }", ""),
      "overflows 64 bits");
  // A single entry beyond 64 bits.
  expect_error(
      build("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""),
      "64 bits");
}

TEST(NpyErrors, MalformedHeaders) {
  expect_error(build("{'descr': '<f4', 'fortran_order': False}", ""), "lacks");
  expect_error(build("{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,), }", "1234"),
               "fortran_order");
  expect_error(build("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", ""),
               "non-negative");
  expect_error(build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "1234"),
               "unexpected header key");
  expect_error(build("['descr']", ""), "malformed");
  expect_error(build("{'descr: '<f4'", ""), "malformed");
}

TEST(NpyErrors, WriteRejectsInconsistentTensor) {
  tensor t = tensor::zeros(scalar_kind::f32, {4});
  t.data.resize(3);
  EXPECT_THROW(tessel::encode_npy(t), tessel::error);
  EXPECT_THROW(tessel::encode_npy(tensor::zeros(scalar_kind::boolean, {1})), tessel::error);
}

}  // namespace
