// The second layout lock: compile each parameter block into SPIR-V with
// shaderc, read its member offsets back with SPIRV-Cross reflection, and
// compare them with the host struct's offsetof. Both placements are covered:
// push constants (nvidia target) and, where a block exceeds 128 bytes, a
// std430 uniform buffer (portable target).
#include <gtest/gtest.h>

#include <spirv_cross/spirv_cross_c.h>

#include <string>
#include <vector>

#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/kernels/prefill_shared.hpp"
#include "tessel/kernels/turboquant.hpp"
#include "tessel/vk/compiler.hpp"

namespace {

struct reflected_member {
  std::string name;
  std::size_t offset;
  std::size_t array_stride;
};

struct reflected_block {
  std::vector<reflected_member> members;
  std::size_t declared_size = 0;
};

// Reads the single push-constant or uniform block of a module.
reflected_block reflect_params(const tessel::vk::spirv& code, tessel::params_placement placement) {
  spvc_context context = nullptr;
  EXPECT_EQ(spvc_context_create(&context), SPVC_SUCCESS);
  spvc_parsed_ir ir = nullptr;
  EXPECT_EQ(spvc_context_parse_spirv(context, code.data(), code.size(), &ir), SPVC_SUCCESS);
  spvc_compiler compiler = nullptr;
  EXPECT_EQ(spvc_context_create_compiler(context, SPVC_BACKEND_NONE, ir,
                                         SPVC_CAPTURE_MODE_TAKE_OWNERSHIP, &compiler),
            SPVC_SUCCESS);
  spvc_resources resources = nullptr;
  EXPECT_EQ(spvc_compiler_create_shader_resources(compiler, &resources), SPVC_SUCCESS);
  const spvc_reflected_resource* list = nullptr;
  size_t count = 0;
  const auto kind = placement == tessel::params_placement::push_constant
                        ? SPVC_RESOURCE_TYPE_PUSH_CONSTANT
                        : SPVC_RESOURCE_TYPE_UNIFORM_BUFFER;
  EXPECT_EQ(spvc_resources_get_resource_list_for_type(resources, kind, &list, &count),
            SPVC_SUCCESS);
  reflected_block block;
  EXPECT_EQ(count, 1u);
  if (count != 1) {
    spvc_context_destroy(context);
    return block;
  }
  const spvc_type type = spvc_compiler_get_type_handle(compiler, list[0].base_type_id);
  spvc_compiler_get_declared_struct_size(compiler, type, &block.declared_size);
  for (unsigned i = 0; i < spvc_type_get_num_member_types(type); ++i) {
    unsigned offset = 0, stride = 0;
    spvc_compiler_type_struct_member_offset(compiler, type, i, &offset);
    const spvc_type member =
        spvc_compiler_get_type_handle(compiler, spvc_type_get_member_type(type, i));
    if (spvc_type_get_num_array_dimensions(member) > 0)
      spvc_compiler_type_struct_member_array_stride(compiler, type, i, &stride);
    block.members.push_back(
        {spvc_compiler_get_member_name(compiler, list[0].base_type_id, i), offset, stride});
  }
  spvc_context_destroy(context);
  return block;
}

// A minimal kernel carrying block P, reading its first field so the block
// survives optimization.
template <class P>
struct block_probe {
  static constexpr auto name = tessel::name("block_probe");
  using params = P;
  using bindings = tessel::bindings<tessel::out<"sink", float>>;
  using workgroup = tessel::workgroup<1>;
  static std::string body(const tessel::target&) {
    const auto fields = tessel::layout<P>::fields();
    std::string first = std::string(fields[0].name) + (fields[0].array_count ? "[0]" : "");
    return "void main() { sink[0] = float(params." + first + "); }\n";
  }
};

template <class P>
void check_block(const tessel::target& t) {
  const auto& variant = tessel::info<block_probe<P>>();
  const auto placement = variant.placement(t);
  const auto code = tessel::vk::compile_variant(variant, t, tessel::vk::build_mode::debug);
  const reflected_block reflected = reflect_params(code, placement);
  const auto host = tessel::layout<P>::fields();
  ASSERT_EQ(reflected.members.size(), host.size()) << tessel::layout<P>::name;
  for (std::size_t i = 0; i < host.size(); ++i) {
    SCOPED_TRACE(std::string(tessel::layout<P>::name) + "." + std::string(host[i].name) + " on " +
                 std::string(t.name));
    EXPECT_EQ(reflected.members[i].name, host[i].name);
    EXPECT_EQ(reflected.members[i].offset, host[i].host_offset);
    EXPECT_EQ(reflected.members[i].array_stride, host[i].array_stride);
  }
  EXPECT_EQ(reflected.declared_size, sizeof(P)) << tessel::layout<P>::name;
}

template <class... P>
void check_blocks(const tessel::target& t) {
  (check_block<P>(t), ...);
}

TEST(SpirvReflection, SeedBlocksMatchHostOffsetsOnEveryTarget) {
  using namespace tessel::kernels;
  for (const tessel::target* t : tessel::targets::predefined)
    check_blocks<AttnParams, AttnMaskParams, PrefillParams, PrefillBlkParams, VecF16Params,
                 TqParams, TqHbParams, ReduceParams, FwhtParams>(*t);
}

TEST(SpirvReflection, LargeBlockIsAUniformBufferOnlyWhereItMustBe) {
  const auto& probe = tessel::info<block_probe<tessel::kernels::AttnParams>>();
  EXPECT_EQ(probe.placement(tessel::targets::portable), tessel::params_placement::uniform_buffer);
  EXPECT_EQ(probe.placement(tessel::targets::nvidia), tessel::params_placement::push_constant);
  EXPECT_TRUE(tessel::has(probe.features(tessel::targets::portable),
                          tessel::feature::uniform_standard_layout));
  EXPECT_FALSE(tessel::has(probe.features(tessel::targets::nvidia),
                           tessel::feature::uniform_standard_layout));
}

}  // namespace
