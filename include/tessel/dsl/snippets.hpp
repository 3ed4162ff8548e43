// Reusable GLSL snippets. A kernel lists the ones it uses in `snippets`; the
// emitter writes each once, after its own requirements. Snippets that depend
// on the target (subgroup width) generate their text from it.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/scalar.hpp"
#include "tessel/dsl/target.hpp"

namespace tessel::snippets {

// bf16 <-> f32 for bf16 data stored as uint16_t: widening is exact; narrowing
// rounds to nearest even and maps NaN to the quiet NaN 0x7FC0 (as the host's
// tessel::to_bf16 does).
struct bf16_conversion {
  static constexpr extension extensions = extension::explicit_int16;
  static constexpr std::string_view text = R"glsl(
float bf16_to_float(uint16_t bits) { return uintBitsToFloat(uint(bits) << 16); }
uint16_t float_to_bf16(float value) {
  const uint x = floatBitsToUint(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t(0x7FC0u);
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}
)glsl";
};

// The fixed random sign pattern (D1, "SRHT") of KERNELS.md 12.1 for head dims
// up to 512: element j is negated iff bit (j mod 8) of byte j / 8 is set.
// Smaller power-of-two head dims use the table's prefix, as the 512 table
// extends the 256 one. The host reference reads the same bytes.
inline constexpr std::array<std::uint8_t, 64> hadamard_sign_bytes{
    0xa7, 0x3b, 0x91, 0xf4, 0x6d, 0xc2, 0x58, 0x0e, 0xb3, 0x7f, 0x24, 0xd6, 0x89, 0x45, 0xea, 0x1c,
    0x63, 0xaf, 0xd8, 0x52, 0x97, 0x0b, 0xe1, 0x3d, 0x76, 0xc4, 0x19, 0xfe, 0x4a, 0x85, 0x2c, 0xdb,
    0xd3, 0x4e, 0xa8, 0x17, 0x9c, 0x5b, 0xe6, 0x31, 0x72, 0xb9, 0x0d, 0xf5, 0x43, 0x8a, 0x6e, 0xc7,
    0x58, 0x2f, 0x94, 0xe1, 0xb6, 0x3d, 0x0a, 0x7c, 0xc5, 0x61, 0xd8, 0x4f, 0xa3, 0x97, 0x1e, 0x85};
inline constexpr std::uint32_t hadamard_max_dim = 8 * hadamard_sign_bytes.size();

constexpr bool hadamard_sign_negative(std::uint32_t j) {
  return ((hadamard_sign_bytes[j / 8] >> (j % 8)) & 1u) != 0;
}

struct hadamard_signs {
  static constexpr extension extensions = extension::none;
  static std::string glsl(const target&) {
    // Packed as little-endian words so element j is bit j % 32 of word j / 32.
    std::string out = "const uint HADAMARD_SIGN_WORDS[16] = uint[16](";
    for (std::size_t w = 0; w < hadamard_sign_bytes.size() / 4; ++w) {
      std::uint32_t word = 0;
      for (std::size_t b = 0; b < 4; ++b)
        word |= std::uint32_t{hadamard_sign_bytes[4 * w + b]} << (8 * b);
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%08xu", word);
      out += (w ? ", " : "") + std::string(hex);
    }
    out += R"glsl();
float hadamard_sign(uint j) {
  return ((HADAMARD_SIGN_WORDS[j >> 5] >> (j & 31u)) & 1u) != 0u ? -1.0 : 1.0;
}
)glsl";
    return out;
  }
};

// The unnormalized Walsh-Hadamard butterflies over a logical group of 32
// lanes, each holding FWHT_EPT contiguous elements (lane l holds elements
// l*FWHT_EPT .. +FWHT_EPT-1), in natural (Sylvester) order. Local stages run in
// registers; cross-lane stages use subgroup shuffles while the distance is
// inside the target's subgroup, and shared memory beyond it (lavapipe's 8-lane
// subgroups). Must be called by all 32 lanes of the group in uniform control
// flow; the including kernel defines FWHT_EPT and FWHT_GROUPS (logical groups
// per workgroup, each 32 consecutive invocations).
struct fwht_butterflies {
  static constexpr extension extensions = extension::subgroup_basic | extension::subgroup_shuffle;
  static std::string glsl(const target& t) {
    std::string out = R"glsl(
shared float fwht_exchange[FWHT_GROUPS * 32 * FWHT_EPT];

void fwht_group(inout float v[FWHT_EPT], uint group, uint lane) {
  for (uint h = 1u; h < FWHT_EPT; h <<= 1) {
    for (uint j = 0u; j < FWHT_EPT; ++j) {
      if ((j & h) == 0u) {
        const float a = v[j];
        const float b = v[j + h];
        v[j] = a + b;
        v[j + h] = a - b;
      }
    }
  }
)glsl";
    // Distances inside a subgroup: one shuffle per element and stage.
    const std::uint32_t shuffle_limit = t.subgroup_size < 32 ? t.subgroup_size : 32;
    out += "  for (uint delta = 1u; delta < " + std::to_string(shuffle_limit) +
           "u; delta <<= 1) {\n" + R"glsl(    const bool upper = (lane & delta) != 0u;
    for (uint j = 0u; j < FWHT_EPT; ++j) {
      const float other = subgroupShuffleXor(v[j], delta);
      v[j] = upper ? other - v[j] : v[j] + other;
    }
  }
)glsl";
    if (shuffle_limit < 32) {
      // Distances that cross subgroups: exchange through shared memory.
      out += "  for (uint delta = " + std::to_string(shuffle_limit) +
             "u; delta < 32u; delta <<= 1) {\n" +
             R"glsl(    const uint base = group * 32u * FWHT_EPT;
    for (uint j = 0u; j < FWHT_EPT; ++j) fwht_exchange[base + lane * FWHT_EPT + j] = v[j];
    barrier();
    const bool upper = (lane & delta) != 0u;
    const uint partner = base + (lane ^ delta) * FWHT_EPT;
    for (uint j = 0u; j < FWHT_EPT; ++j) {
      const float other = fwht_exchange[partner + j];
      v[j] = upper ? other - v[j] : v[j] + other;
    }
    barrier();
  }
)glsl";
    }
    out += "}\n";
    return out;
  }
};

// The sum of `value` over an aligned cluster of `width` lanes (a power of two
// up to 32) of a logical group of 32 lanes, for every lane of the cluster;
// the lanes of a cluster get bit-identical results (each adds the same terms
// in the same order up to commutation). Shuffles inside the target's
// subgroup, shared memory across subgroups (lavapipe's 8 lanes). Must be
// called by all 32 lanes of the group in uniform control flow with a uniform
// `width`; the including kernel defines GROUP_SUM_GROUPS (logical groups per
// workgroup, each 32 consecutive invocations).
struct group_sum {
  static constexpr extension extensions = extension::subgroup_basic | extension::subgroup_shuffle;
  static std::string glsl(const target& t) {
    const std::uint32_t shuffle_limit = t.subgroup_size < 32 ? t.subgroup_size : 32;
    std::string out = "const uint GROUP_SUM_SHUFFLE_LIMIT = " + std::to_string(shuffle_limit) +
                      "u;\n" + R"glsl(shared float group_sum_exchange[GROUP_SUM_GROUPS * 32];

float group_sum(float value, uint group, uint lane, uint width) {
  for (uint delta = 1u; delta < min(width, GROUP_SUM_SHUFFLE_LIMIT); delta <<= 1)
    value += subgroupShuffleXor(value, delta);
)glsl";
    if (shuffle_limit < 32) {
      // Clusters wider than a subgroup: every lane adds the subgroups' partial
      // sums in the same order.
      out += R"glsl(  if (width > GROUP_SUM_SHUFFLE_LIMIT) {
    const uint base = group * 32u;
    group_sum_exchange[base + lane] = value;
    barrier();
    const uint cluster = base + (lane & ~(width - 1u));
    float total = 0.0;
    for (uint k = 0u; k < width; k += GROUP_SUM_SHUFFLE_LIMIT) total += group_sum_exchange[cluster + k];
    barrier();
    value = total;
  }
)glsl";
    }
    return out + "  return value;\n}\n";
  }
};

// Reductions inside aligned groups of 8 consecutive subgroup lanes, the
// smallest subgroup tessel runs on (lavapipe): a kernel that splits work into
// such groups reads the same on 8-, 32- and 64-lane subgroups, since shuffle
// distances 1, 2 and 4 never leave the group. Every lane of the subgroup must
// call them in uniform control flow.
//   group8_max(x), group8_sum(x): the group's max / sum, in every lane.
//   group8_reduce_scatter(v, lane): lane l receives the group's sum of v[l]
//     (7 shuffles for 8 sums, where 8 all-reductions would take 24).
struct group8_reductions {
  static constexpr extension extensions = extension::subgroup_basic | extension::subgroup_shuffle;
  static std::string glsl(const target& t) {
    // Shuffles stay inside an aligned group of 8 only when subgroups hold
    // at least 8 lanes; say so at compile time rather than compute garbage.
    std::string out =
        t.subgroup_size < 8 ? "#error group8_reductions needs subgroups of >= 8 lanes\n" : "";
    out += R"glsl(
float group8_max(float x) {
  x = max(x, subgroupShuffleXor(x, 1u));
  x = max(x, subgroupShuffleXor(x, 2u));
  return max(x, subgroupShuffleXor(x, 4u));
}

float group8_sum(float x) {
  x += subgroupShuffleXor(x, 1u);
  x += subgroupShuffleXor(x, 2u);
  return x + subgroupShuffleXor(x, 4u);
}

// Each step keeps the half of the values the lane will own and sends the
// other half to its partner: after distances 4, 2 and 1, lane l holds v[l].
float group8_reduce_scatter(float v[8], uint lane) {
  const bool upper4 = (lane & 4u) != 0u;
  float half4[4];
  for (uint i = 0u; i < 4u; ++i)
    half4[i] = (upper4 ? v[i + 4u] : v[i]) + subgroupShuffleXor(upper4 ? v[i] : v[i + 4u], 4u);
  const bool upper2 = (lane & 2u) != 0u;
  float half2[2];
  for (uint i = 0u; i < 2u; ++i)
    half2[i] = (upper2 ? half4[i + 2u] : half4[i]) +
               subgroupShuffleXor(upper2 ? half4[i] : half4[i + 2u], 2u);
  const bool upper1 = (lane & 1u) != 0u;
  return (upper1 ? half2[1] : half2[0]) + subgroupShuffleXor(upper1 ? half2[0] : half2[1], 1u);
}
)glsl";
    return out;
  }
};

// The merge of the decode reduce (kernels/decode_reduce.hpp has the partials
// layout): for one query row, the weights exp(M_w - max M) of its NWG slices
// and the normalized output, a float4 chunk at a time. The including kernel
// defines D and MAX_NWG, the specialization constant `nwg` and the buffer
// `partials` with a vec4 wide view, and runs workgroups of at most 128
// invocations.
//   void decode_reduce_weights(uint nrows, uint row, uint tid)
//          fills the slice weights and the inverse weighted sum; every
//          invocation of the workgroup calls it in uniform control flow,
//          and each takes every (workgroup size)-th slice;
//   vec4 decode_reduce_chunk(uint row, uint chunk, uint part)
//          float4 chunk `chunk` of the merged row (after the weights), in
//          every lane of an aligned group of 8 that share it: lane `part`
//          of them reads every 8th slice from slice `part` (a chunk's slices
//          are contiguous, so the 8 lanes read 128 consecutive bytes) and
//          the sums meet by shuffles. Called in uniform control flow; a
//          chunk past the row (chunk >= D / 4) is zero.
// A row whose slices are all empty gets exact zeros.
struct decode_reduce_merge {
  using requires_snippets = snippet_list<group8_reductions>;
  static constexpr extension extensions =
      extension::subgroup_basic | extension::subgroup_arithmetic;
  // One per subgroup of a 128-invocation workgroup, even of 1-lane subgroups.
  static constexpr std::uint32_t subgroup_slots = 128;
  static std::string glsl(const target&) {
    return "\nshared float slice_weight[MAX_NWG];\nshared float subgroup_values[" +
           std::to_string(subgroup_slots) + "];" + std::string(functions);
  }
  static constexpr std::string_view functions = R"glsl(
float inverse_sum;

// The workgroup's max (or sum) of x, in every invocation; uniform control flow.
float workgroup_reduce(float x, bool take_max) {
  x = take_max ? subgroupMax(x) : subgroupAdd(x);
  if (subgroupElect()) subgroup_values[gl_SubgroupID] = x;
  barrier();
  float result = subgroup_values[0];
  for (uint i = 1u; i < gl_NumSubgroups; ++i)
    result = take_max ? max(result, subgroup_values[i]) : result + subgroup_values[i];
  barrier();
  return result;
}

void decode_reduce_weights(uint nrows, uint row, uint tid) {
  // Empty slices hold S = 0 and the finite sentinel M = -FLT_MAX/2, so
  // they get weight 0 (or 1 times S = 0) and never produce NaN.
  const uint threads = gl_WorkGroupSize.x * gl_WorkGroupSize.y * gl_WorkGroupSize.z;
  const uint stats = nrows * D * nwg + row * 2u * nwg;
  float row_max = -1.70141173e38;
  for (uint w = tid; w < nwg; w += threads) row_max = max(row_max, partials[stats + 2u * w + 1u]);
  row_max = workgroup_reduce(row_max, true);
  float sum = 0.0;
  for (uint w = tid; w < nwg; w += threads) {
    const float weight = exp(partials[stats + 2u * w + 1u] - row_max);
    slice_weight[w] = weight;
    sum += weight * partials[stats + 2u * w];
  }
  // Its barrier also orders the weights before their reads.
  sum = workgroup_reduce(sum, false);
  inverse_sum = sum == 0.0 ? 0.0 : 1.0 / sum;
}

vec4 decode_reduce_chunk(uint row, uint chunk, uint part) {
  vec4 acc = vec4(0.0);
  if (chunk < D / 4u) {
    const uint base = row * (D / 4u) * nwg + nwg * chunk;
    for (uint w = part; w < nwg; w += 8u) acc += slice_weight[w] * partials_wide[base + w];
  }
  acc = vec4(group8_sum(acc.x), group8_sum(acc.y), group8_sum(acc.z), group8_sum(acc.w));
  return acc * inverse_sum;
}
)glsl";
};

}  // namespace tessel::snippets
