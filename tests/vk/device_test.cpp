#include <cctype>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "fixture.hpp"
#include "tessel/vk.hpp"
#include "toy_kernels.hpp"

namespace tessel::test {
namespace {

using device = device_test;

vk::device_traits fake(std::uint32_t index, std::string name, std::string type) {
  vk::device_traits t;
  t.index = index;
  t.name = std::move(name);
  t.type = std::move(type);
  return t;
}

TEST_F(device, enumerates_at_least_the_context_device) {
  const auto devices = vk::enumerate_devices(ctx().instance());
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[vk::choose_device(devices, "")].name, ctx().device().name);
  for (const auto& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_NE(d.type, "");
    EXPECT_GT(d.subgroup_size, 0u);
  }
}

TEST(choose_device, default_prefers_discrete_then_integrated_then_virtual_then_cpu) {
  const std::vector<vk::device_traits> devices = {
      fake(0, "cpu one", "cpu"), fake(1, "virtual one", "virtual"),
      fake(2, "integrated one", "integrated"), fake(3, "discrete one", "discrete")};
  EXPECT_EQ(vk::choose_device(devices, ""), 3u);
  EXPECT_EQ(vk::choose_device({devices[0], devices[1], devices[2]}, ""), 2u);
  EXPECT_EQ(vk::choose_device({devices[0], devices[1]}, ""), 1u);
  EXPECT_EQ(vk::choose_device({devices[0]}, ""), 0u);
}

TEST(choose_device, by_index_and_case_insensitive_substring) {
  const std::vector<vk::device_traits> devices = {fake(0, "llvmpipe (LLVM 15)", "cpu"),
                                                  fake(1, "NVIDIA H100 80GB HBM3", "discrete")};
  EXPECT_EQ(vk::choose_device(devices, "0"), 0u);
  EXPECT_EQ(vk::choose_device(devices, "1"), 1u);
  EXPECT_EQ(vk::choose_device(devices, "h100"), 1u);
  EXPECT_EQ(vk::choose_device(devices, "LLVMPIPE"), 0u);
}

TEST(choose_device, unmatched_request_lists_devices) {
  const std::vector<vk::device_traits> devices = {fake(0, "llvmpipe", "cpu")};
  for (const char* request : {"7", "radeon", "99999999999999999999"}) {
    try {
      vk::choose_device(devices, request);
      ADD_FAILURE() << request << " matched";
    } catch (const tessel::error& e) {
      EXPECT_NE(std::string(e.what()).find("0: llvmpipe"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(vk::choose_device({}, ""), tessel::error);
}

// Sets an environment variable for one scope.
class scoped_env {
 public:
  scoped_env(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~scoped_env() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST_F(device, tessel_device_selects_by_substring_and_index) {
  std::string upper = ctx().device().name.substr(0, 4);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  {
    const scoped_env env("TESSEL_DEVICE", upper);
    vk::context by_name(vk::context_options{.validation = std::nullopt,
                                            .pipeline_cache_dir = std::filesystem::path()});
    EXPECT_EQ(by_name.device().name, ctx().device().name);
    expect_no_validation_messages(by_name);
  }
  const scoped_env env("TESSEL_DEVICE", std::to_string(ctx().device().index));
  vk::context by_index(vk::context_options{.validation = std::nullopt,
                                           .pipeline_cache_dir = std::filesystem::path()});
  EXPECT_EQ(by_index.device().index, ctx().device().index);
  EXPECT_EQ(by_index.validation_enabled(), ctx().validation_enabled());
  expect_no_validation_messages(by_index);
}

TEST_F(device, bad_tessel_device_throws_naming_the_devices) {
  // The shared context must exist before TESSEL_DEVICE is spoiled.
  const std::string name = ctx().device().name;
  const scoped_env env("TESSEL_DEVICE", "no such device anywhere");
  try {
    vk::context bad;
    FAIL() << "a context was created on " << bad.device().name;
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("no such device anywhere"), std::string::npos) << text;
    EXPECT_NE(text.find(name), std::string::npos) << text;
  }
}

TEST_F(device, target_reflects_the_device_traits) {
  const vk::device_traits& d = ctx().device();
  const tessel::target& t = ctx().target();
  EXPECT_EQ(t.name, "device");
  EXPECT_EQ(t.subgroup_size, d.subgroup_size);
  EXPECT_EQ(t.push_constant_bytes, d.push_constant_bytes);
  EXPECT_EQ(t.shared_memory_bytes, d.shared_memory_bytes);
  EXPECT_EQ(t.max_workgroup_invocations, d.max_workgroup_invocations);
  EXPECT_EQ(t.features, d.features);
  EXPECT_EQ(t.coopmat_shape_count, std::min<std::size_t>(d.coopmat_shapes.size(), 4));
  EXPECT_EQ(t.has_coopmat(), has(d.features, feature::cooperative_matrix_nv));
  EXPECT_GE(d.api_version, VK_API_VERSION_1_2);
  EXPECT_GT(d.max_storage_buffer_range, 0u);
  EXPECT_GT(d.subgroup_size, 0u);
  EXPECT_EQ(d.subgroup_size & (d.subgroup_size - 1), 0u) << "not a power of two";
  EXPECT_GE(d.push_constant_bytes, 128u);  // the Vulkan minimum
  EXPECT_GE(d.shared_memory_bytes, 16384u);
  EXPECT_FALSE(d.driver.empty());
  if (d.timestamps) {
    EXPECT_GT(d.timestamp_period_ns, 0.0);
  }
  // A copy of the traits yields a target that views the copy's name.
  const vk::device_traits copy = d;
  EXPECT_EQ(copy.target(), t);
}

TEST_F(device, require_names_the_variant_and_missing_feature) {
  if (has(ctx().device().features, feature::cooperative_matrix_nv))
    GTEST_SKIP() << "this device has NV cooperative matrices";
  const variant_info& v = info<needs_coopmat>();
  try {
    ctx().require(v);
    FAIL() << "require accepted a cooperative-matrix variant";
  } catch (const tessel::error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("test_needs_coopmat"), std::string::npos) << text;
    EXPECT_NE(text.find("VK_NV_cooperative_matrix"), std::string::npos) << text;
  }
  EXPECT_THROW(ctx().pipeline(v), tessel::error);
  EXPECT_NO_THROW(ctx().require(info<axpb>()));
}

TEST(result, names_vk_results_in_errors) {
  EXPECT_EQ(vk::result_name(VK_ERROR_OUT_OF_DEVICE_MEMORY), "VK_ERROR_OUT_OF_DEVICE_MEMORY");
  try {
    vk::check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit");
    FAIL();
  } catch (const tessel::error& e) {
    EXPECT_EQ(e.vk_result(), VK_ERROR_DEVICE_LOST);
    EXPECT_EQ(e.operation(), "vkQueueSubmit");
    EXPECT_NE(std::string(e.what()).find("VK_ERROR_DEVICE_LOST"), std::string::npos);
  }
  EXPECT_NO_THROW(vk::check(VK_SUCCESS, "anything"));
}

}  // namespace
}  // namespace tessel::test
