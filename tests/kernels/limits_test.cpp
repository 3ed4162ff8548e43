// Size arithmetic of every op: shapes whose element counts overflow the
// kernels' 32-bit indexing or 64 bits, and buffers beyond the device's
// maxStorageBufferRange (128 MiB on lavapipe), are rejected with an error
// that names the operand and the limit, before anything is allocated on the
// device or recorded.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>

#include "compiled_catalog.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "vk/fixture.hpp"

namespace {

using namespace tessel::kernels;

// `call` throws tessel::error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& call, std::initializer_list<std::string> parts) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one mentioning " << *parts.begin();
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    for (const std::string& part : parts)
      EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
  }
}

constexpr std::uint64_t two_to_32 = std::uint64_t{1} << 32;

TEST(Limits, FwhtRowsBeyond32BitIndexing) {
  // 2^26 rows of 64: 2^32 elements, one more than a 32-bit index reaches.
  expect_error([] { validate_fwht(1u << 26, 64, hadamard_mode::rotate, two_to_32); },
               {"fwht", "data element count = 4294967296", "32-bit indexing"});
}

TEST(Limits, DecodeReducePartialsBeyond32BitIndexing) {
  // 2^23 rows x 256 slices x (512 + 2) floats.
  expect_error([] { validate_decode_reduce(1u << 23, 512, 256, two_to_32, 1); },
               {"decode_reduce", "partials element count", "32-bit indexing"});
}

TEST(Limits, TqEncodeCacheBeyond32BitIndexing) {
  // 2^16 heads x 2^16 positions x 128 words of 8-bit codes.
  const tq_cache_format format{1u << 16, 1u << 16, 512, 8};
  expect_error(
      [&] {
        validate_tq_encode(format, {1, 0, false, true, 0}, 512, 0, 0);
      },
      {"tq_encode", "codes element count", "32-bit indexing"});
}

TEST(Limits, DecodeF16CacheBeyond32BitIndexing) {
  const tessel::vk::device_traits& device = tessel::test::shared_context().device();
  decode_f16_args a;
  a.num_heads = a.num_kv_heads = 8;
  a.head_dim = 128;
  a.kv_seq_len = a.kv_capacity = 1u << 22;  // 8 x 2^22 x 128 = 2^32 halves
  expect_error([&] { plan_decode_f16(device, a); },
               {"decode_f16", "keys element count = 4294967296", "32-bit indexing"});
  // A product that 32-bit arithmetic would wrap is reported at its true value.
  a.batch = 65535;
  a.num_heads = a.num_kv_heads = 65535;
  a.kv_seq_len = a.kv_capacity = 0xFFFFFFFFu;
  a.head_dim = 0xFFFFFFF8u;
  a.nwg = 1;
  expect_error([&] { plan_decode_f16(device, a); },
               {"decode_f16", "q element count = 18446181093692407800", "32-bit indexing"});
}

TEST(Limits, PrefillOperandsBeyond32BitIndexing) {
  prefill_problem p;
  p.batch = 1;
  p.num_heads = p.num_kv_heads = 64;
  p.head_dim = 128;
  p.query_len = p.key_len = 1u << 19;  // 64 x 2^19 x 128 = 2^32
  expect_error(
      [&] {
        validate_prefill(p, {two_to_32, two_to_32, two_to_32, two_to_32, {}, {}});
      },
      {"prefill", "q element count = 4294967296", "32-bit indexing"});
}

// Through the catalog, as `tessel run` gets there: an input one element past
// lavapipe's 128 MiB storage-buffer range is refused with the limit's name.
class LimitsOnDevice : public tessel::test::device_test {
 protected:
  void expect_range_error(const std::string& op_name, const tessel::tensor_map& in,
                          const tessel::parameter_map& params) {
    SCOPED_TRACE(op_name);
    const tessel::op_entry* op = nullptr;
    for (const tessel::op_entry& entry : tessel::tools::ops())
      if (entry.name == op_name) op = &entry;
    ASSERT_NE(op, nullptr);
    expect_error([&] { op->run(ctx(), in, params); }, {"maxStorageBufferRange"});
  }
  // Extent of a leading axis that makes `row_bytes`-byte rows exceed the range.
  std::uint64_t rows_past_range(std::uint64_t row_bytes) {
    return ctx().device().max_storage_buffer_range / row_bytes + 1;
  }
};

TEST_F(LimitsOnDevice, EveryOpRefusesAnInputBeyondTheStorageBufferRange) {
  using tessel::scalar_kind;
  using tessel::tensor;
  if (ctx().device().max_storage_buffer_range >= two_to_32 - 1)
    GTEST_SKIP() << "the device's range is the 32-bit maximum; nothing to exceed below 4 GiB";
  expect_range_error("fwht",
                     {{"data", tensor::zeros(scalar_kind::f32, {rows_past_range(256), 64})}}, {});
  expect_range_error("decode_reduce",
                     {{"partials", tensor::zeros(scalar_kind::f32, {rows_past_range(4)})}},
                     {{"nrows", 1}, {"head_dim", 64}, {"nwg", 1}});
  const std::uint64_t positions = rows_past_range(256);
  expect_range_error("decode_f16",
                     {{"q", tensor::zeros(scalar_kind::f32, {1, 1, 128})},
                      {"keys", tensor::zeros(scalar_kind::f16, {1, 1, positions, 128})},
                      {"values", tensor::zeros(scalar_kind::f16, {1, 1, positions, 128})}},
                     {{"nwg", 1}});
  const std::uint64_t tokens = rows_past_range(512);
  expect_range_error("tq_encode", {{"src", tensor::zeros(scalar_kind::f32, {1, tokens, 128})}},
                     {{"kv_capacity", double(tokens)}});
  expect_range_error("prefill",
                     {{"q", tensor::zeros(scalar_kind::f16, {1, 1, rows_past_range(128), 64})},
                      {"k", tensor::zeros(scalar_kind::f16, {1, 1, 8, 64})},
                      {"v", tensor::zeros(scalar_kind::f16, {1, 1, 8, 64})}},
                     {});
}

}  // namespace
