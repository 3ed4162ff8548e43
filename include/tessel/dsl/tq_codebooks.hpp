// The TurboQuant codebooks (KERNELS.md 12.3): Lloyd-Max reconstruction
// levels ("centroids") for N(0,1) and the decision boundaries between them,
// for 4-bit codes (stored as nibbles) and 5-, 6- and 8-bit codes (stored as
// bytes). They are defined once, here, as float data: the GLSL tables are
// generated from these arrays and the host reference reads the same arrays,
// so the device and the host quantize against identical float values.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/error.hpp"

namespace tessel::tq {

namespace detail {

// Every table is exactly antisymmetric (c[n-1-i] = -c[i], b[n-2-i] = -b[i]),
// so only the non-negative half is written out: centroids n/2 .. n-1 and
// boundaries n/2-1 .. n-2 (the first of which is the middle boundary 0).
// The boundaries are the published decimal midpoints of higher-precision
// centroids, not the float midpoints of the centroids below (those differ
// from them for 2 of 15, 6 of 31, 26 of 63 and 108 of 255 boundaries, by at
// most 2 ulps): bit-exact encoders must compare against these literal values.
inline constexpr std::array<float, 8> centroids_4_half{
    0.1283950f, 0.3880483f, 0.6567591f, 0.9423405f, 1.2562312f, 1.6180464f, 2.0690172f, 2.7325896f,
};
inline constexpr std::array<float, 8> boundaries_4_half{
    0.0000000f, 0.2582217f, 0.5224037f, 0.7995498f, 1.0992859f, 1.4371388f, 1.8435318f, 2.4008034f,
};
inline constexpr std::array<float, 16> centroids_5_half{
    0.0658849f, 0.1980377f, 0.3313550f, 0.4666676f, 0.6048936f, 0.7470884f, 0.8945114f, 1.0487242f,
    1.2117410f, 1.3862739f, 1.5761599f, 1.7871646f, 2.0286608f, 2.3176743f, 2.6910589f, 3.2606790f,
};
inline constexpr std::array<float, 16> boundaries_5_half{
    0.0000000f, 0.1319613f, 0.2646964f, 0.3990113f, 0.5357806f, 0.6759910f, 0.8207999f, 0.9716178f,
    1.1302326f, 1.2990074f, 1.4812169f, 1.6816622f, 1.9079127f, 2.1731675f, 2.5043666f, 2.9758689f,
};
inline constexpr std::array<float, 32> centroids_6_half{
    0.0311537f, 0.0935225f, 0.1560761f, 0.2189392f, 0.2822386f, 0.3461048f, 0.4106724f, 0.4760822f,
    0.5424819f, 0.6100285f, 0.6788902f, 0.7492492f, 0.8213046f, 0.8952766f, 0.9714118f, 1.0499889f,
    1.1313277f, 1.2157998f, 1.3038428f, 1.3959804f, 1.4928497f, 1.5952401f, 1.7041502f, 1.8208742f,
    1.9471373f, 2.0853192f, 2.2388464f, 2.4129324f, 2.6161277f, 2.8640626f, 3.1907215f, 3.6996161f,
};
inline constexpr std::array<float, 32> boundaries_6_half{
    0.0000000f, 0.0623381f, 0.1247993f, 0.1875076f, 0.2505889f, 0.3141717f, 0.3783886f, 0.4433773f,
    0.5092820f, 0.5762552f, 0.6444593f, 0.7140697f, 0.7852769f, 0.8582906f, 0.9333442f, 1.0107003f,
    1.0906583f, 1.1735638f, 1.2598213f, 1.3499116f, 1.4444151f, 1.5440449f, 1.6496952f, 1.7625122f,
    1.8840057f, 2.0162282f, 2.1620828f, 2.3258894f, 2.5145300f, 2.7400952f, 3.0273920f, 3.4451688f,
};
inline constexpr std::array<float, 128> centroids_8_half{
    0.0135717f, 0.0407151f, 0.0678584f, 0.0950019f, 0.1221453f, 0.1492888f, 0.1764324f, 0.2035761f,
    0.2307198f, 0.2578636f, 0.2850076f, 0.3121517f, 0.3392960f, 0.3664405f, 0.3935852f, 0.4207301f,
    0.4478753f, 0.4750208f, 0.5021667f, 0.5293129f, 0.5564596f, 0.5836067f, 0.6107544f, 0.6379027f,
    0.6650517f, 0.6922014f, 0.7193520f, 0.7465035f, 0.7736561f, 0.8008098f, 0.8279648f, 0.8551212f,
    0.8822793f, 0.9094390f, 0.9366008f, 0.9637647f, 0.9909310f, 1.0180999f, 1.0452718f, 1.0724469f,
    1.0996255f, 1.1268081f, 1.1539951f, 1.1811868f, 1.2083838f, 1.2355865f, 1.2627956f, 1.2900118f,
    1.3172356f, 1.3444678f, 1.3717093f, 1.3989610f, 1.4262237f, 1.4534986f, 1.4807869f, 1.5080897f,
    1.5354084f, 1.5627445f, 1.5900996f, 1.6174755f, 1.6448739f, 1.6722970f, 1.6997469f, 1.7272261f,
    1.7547372f, 1.7822828f, 1.8098662f, 1.8374904f, 1.8651592f, 1.8928763f, 1.9206458f, 1.9484722f,
    1.9763603f, 2.0043154f, 2.0323430f, 2.0604493f, 2.0886408f, 2.1169245f, 2.1453081f, 2.1737998f,
    2.2024086f, 2.2311440f, 2.2600165f, 2.2890372f, 2.3182184f, 2.3475732f, 2.3771157f, 2.4068614f,
    2.4368270f, 2.4670306f, 2.4974918f, 2.5282321f, 2.5592748f, 2.5906452f, 2.6223710f, 2.6544825f,
    2.6870129f, 2.7199985f, 2.7534795f, 2.7874999f, 2.8221086f, 2.8573596f, 2.8933131f, 2.9300362f,
    2.9676040f, 3.0061011f, 3.0456229f, 3.0862780f, 3.1281899f, 3.1715011f, 3.2163758f, 3.2630056f,
    3.3116156f, 3.3624729f, 3.4158977f, 3.4722785f, 3.5320936f, 3.5959415f, 3.6645851f, 3.7390194f,
    3.8205780f, 3.9111092f, 4.0132856f, 4.1311907f, 4.2715508f, 4.4467193f, 4.6836997f, 5.0652659f,
};
inline constexpr std::array<float, 128> boundaries_8_half{
    0.0000000f, 0.0271434f, 0.0542868f, 0.0814302f, 0.1085736f, 0.1357171f, 0.1628606f, 0.1900042f,
    0.2171479f, 0.2442917f, 0.2714356f, 0.2985797f, 0.3257239f, 0.3528683f, 0.3800128f, 0.4071577f,
    0.4343027f, 0.4614481f, 0.4885937f, 0.5157398f, 0.5428862f, 0.5700331f, 0.5971806f, 0.6243286f,
    0.6514772f, 0.6786266f, 0.7057767f, 0.7329278f, 0.7600798f, 0.7872329f, 0.8143873f, 0.8415430f,
    0.8687003f, 0.8958592f, 0.9230199f, 0.9501827f, 0.9773478f, 1.0045155f, 1.0316859f, 1.0588593f,
    1.0860362f, 1.1132168f, 1.1404016f, 1.1675909f, 1.1947853f, 1.2219851f, 1.2491911f, 1.2764037f,
    1.3036237f, 1.3308517f, 1.3580886f, 1.3853351f, 1.4125923f, 1.4398612f, 1.4671427f, 1.4944383f,
    1.5217490f, 1.5490764f, 1.5764221f, 1.6037875f, 1.6311747f, 1.6585855f, 1.6860220f, 1.7134865f,
    1.7409817f, 1.7685100f, 1.7960745f, 1.8236783f, 1.8513248f, 1.8790177f, 1.9067610f, 1.9345590f,
    1.9624162f, 1.9903379f, 2.0183292f, 2.0463962f, 2.0745450f, 2.1027826f, 2.1311163f, 2.1595539f,
    2.1881042f, 2.2167763f, 2.2455802f, 2.2745269f, 2.3036278f, 2.3328958f, 2.3623444f, 2.3919885f,
    2.4218442f, 2.4519288f, 2.4822612f, 2.5128620f, 2.5437535f, 2.5749600f, 2.6065081f, 2.6384267f,
    2.6707477f, 2.7035057f, 2.7367390f, 2.7704897f, 2.8048042f, 2.8397341f, 2.8753363f, 2.9116746f,
    2.9488201f, 2.9868525f, 3.0258620f, 3.0659504f, 3.1072339f, 3.1498455f, 3.1939384f, 3.2396907f,
    3.2873106f, 3.3370443f, 3.3891853f, 3.4440881f, 3.5021860f, 3.5640175f, 3.6302633f, 3.7018022f,
    3.7797987f, 3.8658436f, 3.9621974f, 4.0722382f, 4.2013707f, 4.3591350f, 4.5652095f, 4.8744828f,
};

template <std::size_t Half>
constexpr std::array<float, 2 * Half> mirror_centroids(const std::array<float, Half>& half) {
  std::array<float, 2 * Half> full{};
  for (std::size_t i = 0; i < Half; ++i) {
    full[Half + i] = half[i];
    full[Half - 1 - i] = -half[i];
  }
  return full;
}

template <std::size_t Half>
constexpr std::array<float, 2 * Half - 1> mirror_boundaries(const std::array<float, Half>& half) {
  std::array<float, 2 * Half - 1> full{};
  full[Half - 1] = half[0];
  for (std::size_t i = 1; i < Half; ++i) {
    full[Half - 1 + i] = half[i];
    full[Half - 1 - i] = -half[i];
  }
  return full;
}

}  // namespace detail

// The full tables, ascending: centroids_N has 2^N levels, boundaries_N has
// 2^N - 1 and boundaries_N[i] separates centroids_N[i] from centroids_N[i + 1].
inline constexpr auto centroids_4 = detail::mirror_centroids(detail::centroids_4_half);
inline constexpr auto boundaries_4 = detail::mirror_boundaries(detail::boundaries_4_half);
inline constexpr auto centroids_5 = detail::mirror_centroids(detail::centroids_5_half);
inline constexpr auto boundaries_5 = detail::mirror_boundaries(detail::boundaries_5_half);
inline constexpr auto centroids_6 = detail::mirror_centroids(detail::centroids_6_half);
inline constexpr auto boundaries_6 = detail::mirror_boundaries(detail::boundaries_6_half);
inline constexpr auto centroids_8 = detail::mirror_centroids(detail::centroids_8_half);
inline constexpr auto boundaries_8 = detail::mirror_boundaries(detail::boundaries_8_half);

// One codebook: its width and views of its tables.
struct codebook {
  std::uint32_t bits;
  std::span<const float> centroids;   // 2^bits levels, ascending
  std::span<const float> boundaries;  // 2^bits - 1, ascending

  constexpr std::uint32_t levels() const { return 1u << bits; }
};

// The code widths that have a codebook.
inline constexpr std::array<std::uint32_t, 4> codebook_widths{4, 5, 6, 8};

constexpr bool has_codebook(std::uint32_t bits) {
  return bits == 4 || bits == 5 || bits == 6 || bits == 8;
}

// The codebook of `bits`; throws tessel::error for a width without one.
constexpr codebook codebook_for(std::uint32_t bits) {
  switch (bits) {
    case 4:
      return {4, centroids_4, boundaries_4};
    case 5:
      return {5, centroids_5, boundaries_5};
    case 6:
      return {6, centroids_6, boundaries_6};
    case 8:
      return {8, centroids_8, boundaries_8};
    default:
      throw error("codebook", "bits = " + std::to_string(bits) + " must be 4, 5, 6 or 8");
  }
}

}  // namespace tessel::tq

namespace tessel::snippets {

namespace detail {

// A GLSL uint array holding the IEEE-754 bit patterns of `values`: the
// device then reads exactly the host's floats, with no decimal round trip
// through the shader compiler. The array is a read-only global, not
// `const`: glslang copies a `const` array into a function variable at every
// dynamically indexed read (128 copies of a 255-entry table for one D = 512
// row), which makes lavapipe build the pipeline 3-5x slower; a global
// is indexed in place (the form HLSL's static const tables take, which
// drivers keep in constant storage).
inline std::string float_bits_array(std::string_view name, std::span<const float> values) {
  std::string out = "uint " + std::string(name) + "[" + std::to_string(values.size()) +
                    "] = uint[" + std::to_string(values.size()) + "](";
  for (std::size_t i = 0; i < values.size(); ++i) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08xu", std::bit_cast<std::uint32_t>(values[i]));
    out += (i == 0 ? "" : i % 8 == 0 ? ",\n    " : ", ") + std::string(hex);
  }
  return out + ");\n";
}

}  // namespace detail

// The codebooks of tessel::tq as GLSL, with
//   float tq_centroid(uint bits, uint index)  the level of an index (index is
//                                             masked to the width's range);
//   uint  tq_quantize(uint bits, float u)     the index of u: the number of
//                                             boundaries strictly below u.
// The search is branch-free and bisects the boundaries (first probe
// b[2^(bits-1) - 1], then offsets halving), so ties go to the lower index and
// NaN gives 0. `bits` is 4, 5, 6 or 8; with a specialization constant the
// switches fold to one table.
struct tq_codebooks {
  static constexpr extension extensions = extension::none;
  static std::string glsl(const target&) {
    std::string out = "// TurboQuant codebooks (tessel::tq), as float bit patterns.\n";
    std::string centroid = "float tq_centroid(uint bits, uint index) {\n  switch (bits) {\n";
    std::string quantize = "uint tq_quantize(uint bits, float u) {\n  switch (bits) {\n";
    for (const std::uint32_t bits : tq::codebook_widths) {
      const tq::codebook cb = tq::codebook_for(bits);
      const std::string n = std::to_string(bits);
      const std::string centroids = "TQ_CENTROIDS_" + n, boundaries = "TQ_BOUNDARIES_" + n;
      out += detail::float_bits_array(centroids, cb.centroids);
      out += detail::float_bits_array(boundaries, cb.boundaries);
      out += "uint tq_quantize_" + n + "(float u) {\n  uint index = 0u;\n";
      for (std::uint32_t step = cb.levels() / 2; step != 0; step /= 2)
        out += "  index += u > uintBitsToFloat(" + boundaries + "[index + " +
               std::to_string(step - 1) + "u]) ? " + std::to_string(step) + "u : 0u;\n";
      out += "  return index;\n}\n\n";
      const bool last = bits == tq::codebook_widths.back();
      const std::string label = last ? "    default:\n" : "    case " + n + "u:\n";
      centroid += label + "      return uintBitsToFloat(" + centroids + "[index & " +
                  std::to_string(cb.levels() - 1) + "u]);\n";
      quantize += label + "      return tq_quantize_" + n + "(u);\n";
    }
    return out + centroid + "  }\n}\n\n" + quantize + "  }\n}\n";
  }
};

// Unpacking and dequantizing the packed codes of a TurboQuant cache
// (kernels/turboquant.hpp). Codes are packed little-endian into uint words:
// 8 nibbles per word for 4-bit codes, 4 bytes per word for 5-, 6- and 8-bit
// codes, coordinate 0 in the lowest bits. Coordinates 4i .. 4i+3 of a
// position ("quad" i) lie in one word.
//   uint  tq_storage_bits(uint bits)            4 or 8
//   uint  tq_word_code(uint word, uint bits, uint k)
//                                               code k of a word, k < 32 / storage bits
//   uint  tq_quad_word(uint bits, uint quad)    word of a quad, relative to the position
//   vec4  tq_dequantize_quad(uint bits, uint word, uint quad)
//                                               the quad's four centroids
//   float tq_value_scale(float stored_norm, uint head_dim, float scale_factor_d512)
//                                               centroid -> value factor: N / sqrt(D) for
//                                               D <= 256, block RMS / scale factor for D = 512
// A decoded value is tq_centroid(...) * tq_value_scale(norm of its block, ...).
struct tq_unpack {
  static constexpr extension extensions = extension::none;
  using requires_snippets = snippet_list<tq_codebooks>;
  static constexpr std::string_view text = R"glsl(
uint tq_storage_bits(uint bits) { return bits == 4u ? 4u : 8u; }

uint tq_word_code(uint word, uint bits, uint k) {
  return (word >> (tq_storage_bits(bits) * k)) & ((1u << bits) - 1u);
}

uint tq_quad_word(uint bits, uint quad) { return bits == 4u ? quad >> 1 : quad; }

vec4 tq_dequantize_quad(uint bits, uint word, uint quad) {
  const uint packed = bits == 4u ? word >> (16u * (quad & 1u)) : word;
  return vec4(tq_centroid(bits, tq_word_code(packed, bits, 0u)),
              tq_centroid(bits, tq_word_code(packed, bits, 1u)),
              tq_centroid(bits, tq_word_code(packed, bits, 2u)),
              tq_centroid(bits, tq_word_code(packed, bits, 3u)));
}

float tq_value_scale(float stored_norm, uint head_dim, float scale_factor_d512) {
  return head_dim == 512u ? stored_norm / scale_factor_d512 : stored_norm / sqrt(float(head_dim));
}
)glsl";
};

}  // namespace tessel::snippets
