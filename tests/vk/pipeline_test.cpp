#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fixture.hpp"
#include "tessel/vk.hpp"
#include "toy_kernels.hpp"

namespace tessel::test {
namespace {

using pipeline = device_test;

TEST_F(pipeline, created_once_per_variant_and_spec_values) {
  const variant_info& v = info<axpb>();
  const std::array<vk::spec_value, 1> two{{{3, 2}}};
  const std::array<vk::spec_value, 1> one{{{3, 1}}};
  const vk::pipeline& a = ctx().pipeline(v, two);
  EXPECT_EQ(&ctx().pipeline(v, two), &a);
  EXPECT_NE(&ctx().pipeline(v, std::array<vk::spec_value, 1>{{{3, 5}}}), &a);
  // The default value and an explicit one equal to it name the same pipeline.
  EXPECT_EQ(&ctx().pipeline(v), &ctx().pipeline(v, one));
  EXPECT_EQ(a.variant, "test_axpb");
  EXPECT_EQ(a.spec_bits, std::vector<std::uint32_t>{2});
  EXPECT_EQ(a.placement, params_placement::push_constant);
  EXPECT_NE(&ctx().pipeline(info<poly>()), &a);
}

TEST_F(pipeline, rejects_unknown_and_repeated_spec_ids) {
  const variant_info& v = info<axpb>();
  const std::size_t before = ctx().pipelines().size();
  EXPECT_THROW(ctx().pipeline(v, std::array<vk::spec_value, 1>{{{4, 1}}}), tessel::error);
  EXPECT_THROW(ctx().pipeline(v, std::array<vk::spec_value, 2>{{{3, 1}, {3, 2}}}), tessel::error);
  EXPECT_EQ(ctx().pipelines().size(), before);
}

TEST_F(pipeline, glsl_compile_error_names_the_variant) {
  try {
    ctx().pipeline(info<broken>());
    FAIL() << "a broken shader compiled";
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("test_broken_kernel"), std::string::npos) << text;
    EXPECT_NE(text.find("undeclared_variable"), std::string::npos) << text;
  }
}

TEST_F(pipeline, large_parameter_block_becomes_a_uniform_buffer) {
  const variant_info& v = info<poly>();
  const params_placement expected = ctx().device().push_constant_bytes < 160
                                        ? params_placement::uniform_buffer
                                        : params_placement::push_constant;
  EXPECT_EQ(v.placement(ctx().target()), expected);
  EXPECT_EQ(ctx().pipeline(v).placement, expected);
}

std::filesystem::path fresh_directory(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("tessel_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

// The header a driver writes first in its pipeline cache data.
VkPipelineCacheHeaderVersionOne read_header(const std::filesystem::path& file) {
  VkPipelineCacheHeaderVersionOne header{};
  std::ifstream in(file, std::ios::binary);
  in.read(reinterpret_cast<char*>(&header), sizeof header);
  EXPECT_TRUE(in.good()) << file;
  return header;
}

TEST_F(pipeline, cache_file_persists_and_bad_files_are_ignored) {
  const std::filesystem::path dir = fresh_directory("cache");
  const vk::context_options options{.validation = ctx().validation_enabled(),
                                    .pipeline_cache_dir = dir};
  std::filesystem::path file;
  {
    vk::context first(options);
    ASSERT_TRUE(first.pipelines().file());
    file = *first.pipelines().file();
    EXPECT_EQ(file.parent_path(), dir);
    EXPECT_NE(file.filename().string().find(vk::detail::hex(first.device().pipeline_cache_uuid)),
              std::string::npos);
    first.pipeline(info<axpb>());
    expect_no_validation_messages(first);
  }
  ASSERT_TRUE(std::filesystem::exists(file));
  const VkPipelineCacheHeaderVersionOne header = read_header(file);
  EXPECT_EQ(header.vendorID, ctx().device().vendor_id);
  EXPECT_EQ(header.deviceID, ctx().device().device_id);
  EXPECT_EQ(std::memcmp(header.pipelineCacheUUID, ctx().device().pipeline_cache_uuid.data(),
                        VK_UUID_SIZE),
            0);

  const std::uintmax_t good_size = std::filesystem::file_size(file);
  std::vector<char> good(good_size);
  std::ifstream(file, std::ios::binary).read(good.data(), static_cast<std::streamsize>(good_size));
  // Garbage, a truncated header, and a valid header for another device.
  std::vector<std::vector<char>> bad = {std::vector<char>(1000, '\x5a'),
                                        std::vector<char>(good.begin(), good.begin() + 20), good};
  bad[2][8] ^= 0x7f;  // vendorID
  for (const std::vector<char>& contents : bad) {
    std::ofstream(file, std::ios::binary | std::ios::trunc)
        .write(contents.data(), static_cast<std::streamsize>(contents.size()));
    {
      vk::context again(options);
      vk::recorder rec(again);
      vk::buffer<float> x(again, 4), y(again, 4);
      const std::vector<float> ones(4, 1.0f);
      x.upload(ones);
      rec.dispatch<axpb>(AxpbParams{2.0f, 1.0f, 4}, {}, {1, 1, 1}, x, y);
      rec.submit_and_wait();
      EXPECT_EQ(y.download(), std::vector<float>(4, 3.0f));
      expect_no_validation_messages(again);
    }
    EXPECT_EQ(read_header(file).vendorID, ctx().device().vendor_id) << "not rewritten";
  }
  std::filesystem::remove_all(dir);
}

TEST_F(pipeline, empty_cache_directory_means_no_file) {
  vk::context memory_only(vk::context_options{.validation = ctx().validation_enabled(),
                                              .pipeline_cache_dir = std::filesystem::path()});
  EXPECT_FALSE(memory_only.pipelines().file());
  expect_no_validation_messages(memory_only);
}

}  // namespace
}  // namespace tessel::test
