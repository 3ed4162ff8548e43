// Layout rules and the seed parameter blocks, checked against the offsets
// KERNELS.md documents (written out here, not recomputed).
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "compiled_catalog.hpp"

namespace {

using tessel::tools::parameter_blocks;

std::map<std::string, std::size_t> offsets_of(const tessel::block_info& block) {
  std::map<std::string, std::size_t> out;
  for (const auto& f : block.fields) out[std::string(f.name)] = f.offset;
  return out;
}

const tessel::block_info& block_named(std::string_view name) {
  static const auto blocks = parameter_blocks();
  for (const auto& b : blocks)
    if (b.name == name) return b;
  throw std::runtime_error("no block " + std::string(name));
}

TEST(Layout, SeedBlockSizes) {
  EXPECT_EQ(block_named("AttnParams").size, 160u);
  EXPECT_EQ(block_named("AttnMaskParams").size, 24u);
  EXPECT_EQ(block_named("VecF16Params").size, 36u);
  EXPECT_EQ(block_named("TqParams").size, 48u);
  EXPECT_EQ(block_named("TqHbParams").size, 60u);
  EXPECT_EQ(block_named("ReduceParams").size, 4u);
  EXPECT_EQ(block_named("FwhtParams").size, 8u);
}

TEST(Layout, AttnParamsOffsetsMatchKernelsMd) {
  const auto o = offsets_of(block_named("AttnParams"));
  const std::map<std::string, std::size_t> documented{{"batch", 0},
                                                      {"num_heads", 4},
                                                      {"head_dim", 8},
                                                      {"query_len", 12},
                                                      {"key_len", 16},
                                                      {"gqa_factor", 20},
                                                      {"scale", 24},
                                                      {"softcapping", 28},
                                                      {"num_query_tiles", 32},
                                                      {"num_key_tiles", 36},
                                                      {"num_query_tiles_aligned", 40},
                                                      {"num_key_tiles_aligned", 44},
                                                      {"query_len_rem", 48},
                                                      {"key_len_rem", 52},
                                                      {"query_offset", 56},
                                                      {"pad", 60},
                                                      {"q_strides", 64},
                                                      {"k_strides", 88},
                                                      {"v_strides", 112},
                                                      {"o_strides", 136}};
  EXPECT_EQ(o, documented);
  for (const auto& f : block_named("AttnParams").fields)
    if (f.array_count) {
      EXPECT_EQ(f.array_count, 3u) << f.name;
      EXPECT_EQ(f.array_stride, 8u) << f.name;
      EXPECT_EQ(f.glsl_type, "int64_t") << f.name;
    }
}

// The prefill kernel's one block is the seed's two, concatenated.
TEST(Layout, PrefillParamsAreAttnParamsThenAttnMaskParams) {
  const auto attn = offsets_of(block_named("AttnParams"));
  auto prefill = offsets_of(block_named("PrefillParams"));
  EXPECT_EQ(prefill.at("mask_strides"), 160u);
  EXPECT_EQ(block_named("PrefillParams").size, 184u);
  prefill.erase("mask_strides");
  EXPECT_EQ(prefill, attn);
  const auto blk = offsets_of(block_named("PrefillBlkParams"));
  EXPECT_EQ(blk.at("num_heads"), 8u);
  EXPECT_EQ(blk.at("mask_strides"), 16u);
  EXPECT_EQ(block_named("PrefillBlkParams").size, 40u);
}

TEST(Layout, DecodeBlocksOffsetsMatchKernelsMd) {
  const auto tq = offsets_of(block_named("TqParams"));
  EXPECT_EQ(tq.at("softcap"), 32u);
  EXPECT_EQ(tq.at("nwg"), 36u);
  EXPECT_EQ(tq.at("ring_start"), 40u);
  EXPECT_EQ(tq.at("scale_factor_d512"), 44u);
  const auto hb = offsets_of(block_named("TqHbParams"));
  EXPECT_EQ(hb.at("codebook_bits"), 48u);
  EXPECT_EQ(hb.at("fuse_fwht_pre"), 52u);
  EXPECT_EQ(hb.at("nsg"), 56u);
  const auto f16 = offsets_of(block_named("VecF16Params"));
  EXPECT_EQ(f16.at("scale"), 20u);
  EXPECT_EQ(f16.at("ring_start"), 32u);
}

TEST(Layout, EveryShippedBlockMatchesItsHostStruct) {
  for (const auto& block : parameter_blocks())
    for (const auto& f : block.fields)
      EXPECT_EQ(f.offset, f.host_offset) << block.name << "." << f.name;
}

// std430 and scalar differ exactly where the GLSL spec says: vec3/vec4
// alignment and arrays of vec3.
struct Std430Probe {
  float a;
  alignas(16) tessel::vec<float, 3> v3;
  float after_v3;
  tessel::vec<float, 2> v2;
  alignas(16) tessel::vec<float, 4> v4;
  std::uint32_t tail;
};
TESSEL_PARAMS(Std430Probe, a, v3, after_v3, v2, v4, tail);

struct ScalarProbe {
  float a;
  tessel::vec<float, 3> v3;
  float after_v3;
  tessel::vec<float, 2> v2;
  tessel::vec<float, 4> v4;
  std::uint32_t tail;
  tessel::vec<float, 3> triples[2];
};
TESSEL_SCALAR_PARAMS(ScalarProbe, a, v3, after_v3, v2, v4, tail, triples);

static_assert(tessel::layout<Std430Probe>::matches_host);
static_assert(tessel::layout<ScalarProbe>::matches_host);

TEST(Layout, Std430AlignsVec3AndVec4To16) {
  using L = tessel::layout<Std430Probe>;
  EXPECT_EQ(L::offsets[1], 16u);  // vec3 after a float
  EXPECT_EQ(L::offsets[2], 28u);  // a float packs into the vec3's last 4 bytes
  EXPECT_EQ(L::offsets[3], 32u);  // vec2 aligns to 8
  EXPECT_EQ(L::offsets[4], 48u);  // vec4 aligns to 16
  EXPECT_EQ(L::offsets[5], 64u);
  EXPECT_EQ(L::size, 80u);  // rounded to the block's 16-byte alignment
  EXPECT_EQ(L::alignment, 16u);
}

TEST(Layout, ScalarPacksToComponentAlignment) {
  using L = tessel::layout<ScalarProbe>;
  EXPECT_EQ(L::offsets[1], 4u);
  EXPECT_EQ(L::offsets[2], 16u);
  EXPECT_EQ(L::offsets[3], 20u);
  EXPECT_EQ(L::offsets[4], 28u);
  EXPECT_EQ(L::offsets[5], 44u);
  EXPECT_EQ(L::offsets[6], 48u);
  const auto fields = L::fields();
  EXPECT_EQ(fields[6].array_stride, 12u);
  EXPECT_EQ(L::size, 72u);
}

struct Misplaced {
  float a;
  tessel::vec<float, 3> b;
};
TESSEL_PARAMS(Misplaced, a, b);

TEST(Layout, OffsetsAgreeReportsWithoutStopping) {
  EXPECT_FALSE(tessel::layout<Misplaced>::offsets_agree);
  EXPECT_TRUE(tessel::layout<Std430Probe>::offsets_agree);
}

}  // namespace
