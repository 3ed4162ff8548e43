// Snippets that no shipped kernel uses yet are held to their contract here:
// the GLSL bf16 conversion rounds bit-exactly like the host's tessel::to_bf16.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "tessel/dsl/snippets.hpp"
#include "vk/fixture.hpp"

namespace {

struct bf16_round_trip {
  static constexpr auto name = tessel::name("bf16_round_trip");
  using bindings = tessel::bindings<tessel::in<"x", float>, tessel::out<"narrow", tessel::bf16>,
                                    tessel::out<"wide", float>>;
  using workgroup = tessel::workgroup<64>;
  using snippets = tessel::snippet_list<tessel::snippets::bf16_conversion>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i >= x.length()) return;
  const uint16_t bits = float_to_bf16(x[i]);
  narrow[i] = bits;
  wide[i] = bf16_to_float(bits);
}
)glsl";
};

class Snippets : public tessel::test::device_test {};

TEST_F(Snippets, Bf16ConversionMatchesTheHostBitForBit) {
  std::mt19937_64 rng(tessel::test::test_seed());
  std::vector<float> x = tessel::test::random_floats(rng, 4096, -3e4f, 3e4f);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  for (std::size_t i = 0; i < 1024; ++i) x[i] = std::bit_cast<float>(any_bits(rng));
  // Exact ties (round to even), the largest finite values, infinities, NaN.
  const float specials[] = {std::bit_cast<float>(0x3F808000u),
                            std::bit_cast<float>(0x3F818000u),
                            std::numeric_limits<float>::max(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            -0.0f,
                            1e-40f};
  std::copy(std::begin(specials), std::end(specials), x.begin() + 1024);

  tessel::vk::buffer<float> input(ctx(), x.size());
  input.upload(x);
  tessel::vk::buffer<tessel::bf16> narrow(ctx(), x.size());
  narrow.fill(tessel::bf16{0x1234});
  tessel::vk::buffer<float> wide(ctx(), x.size());
  wide.fill(std::nanf(""));
  tessel::vk::recorder rec(ctx());
  rec.dispatch<bf16_round_trip>(
      {}, tessel::extent3{static_cast<std::uint32_t>(x.size() / 64), 1, 1}, input, narrow, wide);
  rec.submit_and_wait();
  const auto got_narrow = narrow.download();
  const auto got_wide = wide.download();
  for (std::size_t i = 0; i < x.size(); ++i) {
    const tessel::bf16 want = tessel::to_bf16(x[i]);
    ASSERT_EQ(got_narrow[i].bits, want.bits)
        << "x = " << x[i] << " (bits " << std::hex << std::bit_cast<std::uint32_t>(x[i]) << ")";
    ASSERT_EQ(std::bit_cast<std::uint32_t>(got_wide[i]), std::uint32_t{want.bits} << 16) << i;
  }
}

}  // namespace
