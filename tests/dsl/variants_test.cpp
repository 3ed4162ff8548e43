// Every registered variant's GLSL compiles with shaderc and passes spirv-val
// for every predefined target, and the generated text follows from the
// description (bindings, constants, workgroup, extensions).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "compiled_catalog.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/vk/compiler.hpp"

namespace {

TEST(Variants, RegistryNamesAreUnique) {
  std::set<std::string_view> names;
  for (const auto* v : tessel::tools::variants())
    EXPECT_TRUE(names.insert(v->name).second) << v->name;
  EXPECT_EQ(names.size(), tessel::tools::variants().size());
}

// A variant that needs a device feature a target lacks (cooperative
// matrices) is compiled for the targets that have it, and for one at least.
TEST(Variants, EveryVariantCompilesAndValidatesOnEveryTargetWithItsFeatures) {
  for (const auto* v : tessel::tools::variants()) {
    int targets = 0;
    for (const tessel::target* t : tessel::targets::predefined) {
      if (!has(t->features, v->features(*t))) continue;
      SCOPED_TRACE(std::string(v->name) + " on " + std::string(t->name));
      ++targets;
      ASSERT_TRUE(v->fits(*t));
      EXPECT_NO_THROW(tessel::vk::compile_variant(*v, *t));
    }
    EXPECT_GT(targets, 0) << v->name << " has no target with its features";
  }
}

TEST(Variants, TextDependsOnTheTarget) {
  const auto& fwht = tessel::info<tessel::kernels::fwht<256>>();
  const std::string portable = fwht.glsl(tessel::targets::portable);
  const std::string nvidia = fwht.glsl(tessel::targets::nvidia);
  // 8-lane subgroups need the shared-memory stages; 32-lane ones do not.
  EXPECT_NE(portable.find("fwht_exchange[partner + j]"), std::string::npos);
  EXPECT_EQ(nvidia.find("fwht_exchange[partner + j]"), std::string::npos);
  EXPECT_NE(portable.find("TARGET_SUBGROUP_SIZE = 8u"), std::string::npos);
  EXPECT_NE(nvidia.find("TARGET_SUBGROUP_SIZE = 32u"), std::string::npos);
  EXPECT_EQ(fwht.glsl(tessel::targets::portable), portable) << "text must be deterministic";
}

TEST(Variants, DeclarationsFollowTheDescription) {
  const auto& reduce = tessel::info<tessel::kernels::decode_reduce<256>>();
  const std::string text = reduce.glsl(tessel::targets::portable);
  EXPECT_NE(text.find("layout(local_size_x = 128, local_size_y = 1, local_size_z = 1) in;"),
            std::string::npos);
  EXPECT_NE(text.find("layout(constant_id = 0) const uint nwg = 32u;"), std::string::npos);
  EXPECT_NE(
      text.find("layout(push_constant, std430) uniform ReduceParams {\n  uint nrows;\n} params;"),
      std::string::npos);
  EXPECT_NE(
      text.find("layout(set = 0, binding = 0, std430) restrict readonly buffer partials_buffer "
                "{ float partials[]; };"),
      std::string::npos);
  EXPECT_NE(text.find("restrict writeonly buffer dst_buffer { float dst[]; };"), std::string::npos);
  ASSERT_EQ(reduce.bindings.size(), 2u);
  EXPECT_EQ(reduce.bindings[0].mode, tessel::access::read);
  EXPECT_EQ(reduce.constants.size(), 1u);
  EXPECT_EQ(reduce.constants[0].default_bits, 32u);
}

// Extensions come from the types a description uses.
struct typed_probe {
  static constexpr auto name = tessel::name("typed_probe");
  using bindings = tessel::bindings<tessel::in<"a", tessel::f16>, tessel::in<"b", tessel::u8>,
                                    tessel::out<"c", tessel::bf16>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes, 2>;
  static constexpr std::string_view body =
      "void main() { c[0] = uint16_t(uint(b[0]) + uint(float(a[0]))); }\n";
};

TEST(Variants, ExtensionsAndWorkgroupDeriveFromTheDescription) {
  const auto& v = tessel::info<typed_probe>();
  const std::string text = v.glsl(tessel::targets::nvidia);
  for (const char* ext :
       {"GL_EXT_shader_explicit_arithmetic_types_float16", "GL_EXT_shader_8bit_storage",
        "GL_EXT_shader_16bit_storage", "GL_EXT_shader_explicit_arithmetic_types_int8",
        "GL_EXT_shader_explicit_arithmetic_types_int16"})
    EXPECT_NE(text.find(std::string("#extension ") + ext + " : require"), std::string::npos) << ext;
  EXPECT_EQ(text.find("int64"), std::string::npos);
  EXPECT_EQ(v.workgroup(tessel::targets::nvidia), (tessel::extent3{32, 2, 1}));
  EXPECT_EQ(v.workgroup(tessel::targets::portable), (tessel::extent3{8, 2, 1}));
  EXPECT_NO_THROW(tessel::vk::compile_variant(v, tessel::targets::nvidia));
}

TEST(Variants, CompileErrorsNameTheVariantAndQuoteTheLine) {
  try {
    tessel::vk::compile_glsl(
        "broken_variant",
        "#version 460\nlayout(local_size_x = 1) in;\nvoid main() { undefined_name = 1; }\n");
    FAIL() << "expected a tessel::error";
  } catch (const tessel::error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("broken_variant"), std::string::npos) << what;
    EXPECT_NE(what.find("undefined_name"), std::string::npos) << what;
    EXPECT_NE(what.find("> 3 |"), std::string::npos) << what;
  }
}

// 40 KiB of shared memory fits the 48 KiB of the nvidia target, not the 32 KiB
// of the portable one; fits() is constexpr so users can static_assert it.
struct large_tile_probe {
  static constexpr auto name = tessel::name("large_tile_probe");
  using bindings = tessel::bindings<tessel::out<"sink", float>>;
  using workgroup = tessel::workgroup<64>;
  static constexpr std::uint32_t shared_bytes(const tessel::target&) { return 40 * 1024; }
  static constexpr std::string_view body = "void main() { sink[0] = 1.0; }\n";
};
static_assert(tessel::fits<large_tile_probe>(tessel::targets::nvidia));
static_assert(!tessel::fits<large_tile_probe>(tessel::targets::portable));

TEST(Variants, SharedMemoryFitIsCheckedPerTarget) {
  const auto& v = tessel::info<large_tile_probe>();
  EXPECT_TRUE(v.fits(tessel::targets::nvidia));
  EXPECT_FALSE(v.fits(tessel::targets::portable));
}

}  // namespace
