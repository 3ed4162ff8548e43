// Faults: out-of-device-memory on allocation, a shader that does not compile
// or needs a missing feature in the middle of a recording, a pipeline-cache
// file with a valid header and a corrupt body. Each gives a tessel::error that
// says what failed, the context and the recorder stay usable, and nothing the
// caller owns changes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

#include <unistd.h>

#include "vk/fixture.hpp"
#include "vk/toy_kernels.hpp"

namespace tessel::test {
namespace {

class fault : public device_test {};

constexpr std::uint64_t MiB = 1 << 20;

TEST_F(fault, allocation_past_the_memory_limit_is_out_of_device_memory) {
  vk::context small(vk::context_options{.validation = ctx().validation_enabled(),
                                        .pipeline_cache_dir = std::filesystem::path(),
                                        .device_memory_limit = 4 * MiB});
  std::optional<vk::buffer<float>> ballast;
  ballast.emplace(small, MiB / 4 * 3);  // 3 MiB
  EXPECT_GE(small.memory_in_use(), 3 * MiB);
  try {
    vk::buffer<float> more(small, MiB / 4 * 2);
    FAIL() << "allocated past the limit";
  } catch (const tessel::error& e) {
    EXPECT_EQ(e.vk_result(), VK_ERROR_OUT_OF_DEVICE_MEMORY);
    const std::string text = e.what();
    EXPECT_NE(text.find("VK_ERROR_OUT_OF_DEVICE_MEMORY"), std::string::npos) << text;
    EXPECT_NE(text.find("device_memory_limit"), std::string::npos) << text;
    EXPECT_NE(text.find("vkAllocateMemory of 2097152 bytes"), std::string::npos) << text;
  }
  // The failed allocation holds nothing; freeing the ballast makes room.
  EXPECT_LT(small.memory_in_use(), 4 * MiB);
  ballast.reset();
  EXPECT_EQ(small.memory_in_use(), 0u);
  vk::buffer<float> now(small, MiB / 4 * 2);
  now.fill(2.0f);
  EXPECT_EQ(now.download()[12345], 2.0f);
  expect_no_validation_messages(small);
}

// An upload needs a staging buffer as large as the data: when that one does
// not fit, the device buffer keeps its contents.
TEST_F(fault, failed_upload_leaves_the_buffer_as_it_was) {
  vk::context small(vk::context_options{.validation = ctx().validation_enabled(),
                                        .pipeline_cache_dir = std::filesystem::path(),
                                        .device_memory_limit = 3 * MiB});
  vk::buffer<float> data(small, MiB / 4 * 2);  // 2 MiB: no room for a 2 MiB staging copy
  EXPECT_THROW(data.fill(1.0f), tessel::error);
  const std::vector<float> values(data.size(), 5.0f);
  EXPECT_THROW(data.upload(values), tessel::error);
  vk::buffer<float> small_one(small, 16);
  small_one.fill(7.0f);
  EXPECT_EQ(small_one.download(), std::vector<float>(16, 7.0f));
  expect_no_validation_messages(small);
}

// An op whose internal allocation (the recorder's uniform block on lavapipe)
// fails records nothing: the output the caller owns keeps its poison, and
// what was recorded before still runs.
TEST_F(fault, out_of_memory_inside_a_dispatch_records_nothing) {
  vk::context small(vk::context_options{.validation = ctx().validation_enabled(),
                                        .pipeline_cache_dir = std::filesystem::path(),
                                        .device_memory_limit = 2 * MiB});
  if (info<poly>().placement(small.target()) != params_placement::uniform_buffer)
    GTEST_SKIP() << "PolyParams is a push constant here: the dispatch allocates nothing";
  vk::buffer<float> x(small, 64), y(small, 64), z(small, 64);
  x.fill(1.0f);
  y.fill(std::nanf(""));
  z.fill(std::nanf(""));
  vk::recorder rec(small);
  rec.dispatch<axpb>(AxpbParams{2.0f, 1.0f, 64}, {}, {1, 1, 1}, x, y);
  // Take all that is left, so the uniform chunk for the next dispatch fails.
  const std::uint64_t left = 2 * MiB - small.memory_in_use();
  std::optional<vk::buffer<std::uint8_t>> ballast;
  ballast.emplace(small, left / 256 * 256 - 256);
  PolyParams params{};
  params.n = 64;
  const extent3 groups{64 / small.target().subgroup_size, 1, 1};
  try {
    rec.dispatch<poly>(params, {}, groups, x, z);
    FAIL() << "the uniform block fitted";
  } catch (const tessel::error& e) {
    EXPECT_EQ(e.vk_result(), VK_ERROR_OUT_OF_DEVICE_MEMORY) << e.what();
  }
  EXPECT_EQ(rec.dispatch_count(), 1u);
  rec.submit_and_wait();
  ballast.reset();
  EXPECT_EQ(y.download(), std::vector<float>(64, 3.0f));
  for (float v : z.download()) ASSERT_TRUE(std::isnan(v)) << "z was written";
  // The recorder and the context go on working.
  rec.dispatch<poly>(params, {}, groups, x, z);
  rec.submit_and_wait();
  EXPECT_EQ(z.download(), std::vector<float>(64, 0.0f));
  expect_no_validation_messages(small);
}

// A shader that does not compile, or needs a feature the device lacks, met in
// the middle of a recording: the error names the variant, the dispatches
// before it still run, its output is untouched.
TEST_F(fault, failed_pipeline_in_a_recording_leaves_the_rest_intact) {
  vk::buffer<float> x(ctx(), 64), y(ctx(), 64), untouched(ctx(), 64);
  x.fill(1.0f);
  y.fill(std::nanf(""));
  untouched.fill(-1.0f);
  vk::recorder rec(ctx());
  rec.dispatch<axpb>(AxpbParams{2.0f, 1.0f, 64}, {}, {1, 1, 1}, x, y);
  try {
    rec.dispatch<broken>({}, {1, 1, 1}, untouched);
    FAIL() << "a broken shader compiled";
  } catch (const tessel::error& e) {
    EXPECT_NE(std::string(e.what()).find("test_broken_kernel"), std::string::npos) << e.what();
  }
  if (!has(ctx().device().features, feature::cooperative_matrix_nv)) {
    try {
      rec.dispatch<needs_coopmat>({}, {1, 1, 1}, untouched);
      FAIL() << "a cooperative-matrix kernel was accepted";
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find("VK_NV_cooperative_matrix"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(rec.dispatch_count(), 1u);
  rec.submit_and_wait();
  EXPECT_EQ(y.download(), std::vector<float>(64, 3.0f));
  EXPECT_EQ(untouched.download(), std::vector<float>(64, -1.0f));
}

// A cache file whose header is this device's but whose body is garbage (after
// the driver's own data, if it writes any: lavapipe writes the header alone):
// the driver gets it, since tessel checks only the header, and the context
// still compiles and runs correctly.
TEST_F(fault, pipeline_cache_with_a_corrupt_body_still_works) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("tessel_corrupt_cache_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const vk::context_options options{.validation = ctx().validation_enabled(),
                                    .pipeline_cache_dir = dir};
  std::filesystem::path file;
  {
    vk::context first(options);
    first.pipeline(info<axpb>());
    file = *first.pipelines().file();
  }
  std::vector<char> contents(std::filesystem::file_size(file));
  std::ifstream(file, std::ios::binary)
      .read(contents.data(), static_cast<std::streamsize>(contents.size()));
  ASSERT_GE(contents.size(), sizeof(VkPipelineCacheHeaderVersionOne));
  contents.resize(contents.size() + 4096);
  for (std::size_t i = sizeof(VkPipelineCacheHeaderVersionOne); i < contents.size(); ++i)
    contents[i] = static_cast<char>(i * 131 + 7);
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(contents.data(), static_cast<std::streamsize>(contents.size()));
  {
    vk::context again(options);
    vk::buffer<float> x(again, 4), y(again, 4);
    x.upload(std::vector<float>(4, 1.0f));
    vk::recorder rec(again);
    rec.dispatch<axpb>(AxpbParams{2.0f, 1.0f, 4}, {}, {1, 1, 1}, x, y);
    rec.submit_and_wait();
    EXPECT_EQ(y.download(), std::vector<float>(4, 3.0f));
    expect_no_validation_messages(again);
  }
  std::filesystem::remove_all(dir);
}

// A device that is not there: the error lists the ones that are.
TEST_F(fault, missing_device_lists_the_devices) {
  try {
    vk::context none(vk::context_options{.device = "no such device 42",
                                         .validation = ctx().validation_enabled(),
                                         .pipeline_cache_dir = std::filesystem::path()});
    FAIL() << "a context was created";
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("no device name contains 'no such device 42'"), std::string::npos) << text;
    EXPECT_NE(text.find(ctx().device().name), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace tessel::test
