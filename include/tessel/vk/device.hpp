// Physical devices: what tessel reads of each one (limits, subgroup size,
// cooperative-matrix shapes, the tessel::feature bits it really supports),
// the tessel::target it implies, and the choice of one by name or index.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

#include "tessel/dsl/scalar.hpp"
#include "tessel/dsl/target.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

struct device_traits {
  std::uint32_t index = 0;  // position in vkEnumeratePhysicalDevices
  std::string name;
  std::string driver;  // driverName + " " + driverInfo
  std::string type;    // "discrete", "integrated", "virtual", "cpu" or "other"
  std::uint32_t api_version = 0, vendor_id = 0, device_id = 0;
  std::uint32_t subgroup_size = 0, shared_memory_bytes = 0, push_constant_bytes = 0,
                max_workgroup_invocations = 0;
  std::uint64_t max_storage_buffer_range = 0;
  std::uint32_t max_uniform_buffer_range = 0;
  std::uint64_t min_uniform_buffer_offset_alignment = 0;
  std::array<std::uint32_t, 3> max_workgroup_count{};
  // VK_NV_shader_sm_builtins shaderSMCount; 0 where the device does not say.
  std::uint32_t compute_units = 0;
  // VK_NV_cooperative_matrix shapes of subgroup scope whose operand types
  // tessel has a scalar_kind for.
  std::vector<coopmat_shape> coopmat_shapes;
  feature features = feature::none;
  double timestamp_period_ns = 0;
  bool timestamps = false;  // the compute queue writes timestamps
  std::uint32_t timestamp_valid_bits = 0;
  std::uint32_t queue_family = 0;  // the compute queue family tessel uses
  std::array<std::uint8_t, 16> pipeline_cache_uuid{};
  // target().name views this member, so a target lives as long as its traits.
  std::string target_name = "device";

  tessel::target target() const {
    tessel::target t;
    t.name = target_name;
    t.subgroup_size = subgroup_size;
    t.push_constant_bytes = push_constant_bytes;
    t.shared_memory_bytes = shared_memory_bytes;
    t.max_workgroup_invocations = max_workgroup_invocations;
    for (const coopmat_shape& s : coopmat_shapes) {
      if (t.coopmat_shape_count == t.coopmat_shapes.size()) break;
      t.coopmat_shapes[t.coopmat_shape_count++] = s;
    }
    t.features = features;
    return t;
  }
};

// The names of the features in `set`, comma separated (for error messages).
inline std::string feature_names(feature set) {
  static constexpr std::pair<feature, std::string_view> names[] = {
      {feature::float16_arithmetic, "shaderFloat16"},
      {feature::int8_arithmetic, "shaderInt8"},
      {feature::int16_arithmetic, "shaderInt16"},
      {feature::int64_arithmetic, "shaderInt64"},
      {feature::storage_8bit, "storageBuffer8BitAccess"},
      {feature::storage_16bit, "storageBuffer16BitAccess"},
      {feature::subgroup_arithmetic, "subgroup basic/arithmetic/shuffle in compute"},
      {feature::cooperative_matrix_nv, "VK_NV_cooperative_matrix"},
      {feature::uniform_standard_layout, "uniformBufferStandardLayout"},
      {feature::scalar_block_layout, "scalarBlockLayout"},
  };
  std::string out;
  for (const auto& [flag, text] : names) {
    if (!has(set, flag)) continue;
    if (!out.empty()) out += ", ";
    out += text;
  }
  return out;
}

// Throws tessel::error naming the variant and the features it needs on
// `device`'s target that the device lacks.
inline void require_features(const device_traits& device, const variant_info& variant) {
  const feature needed = variant.features(device.target());
  const feature missing = static_cast<feature>(static_cast<std::uint32_t>(needed) &
                                               ~static_cast<std::uint32_t>(device.features));
  if (missing == feature::none) return;
  throw error(variant.name, "needs " + feature_names(missing) + ", which device '" + device.name +
                                "' does not support");
}

namespace detail {

inline std::string_view device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "cpu";
    default:
      return "other";
  }
}

inline std::optional<scalar_kind> component_kind(VkComponentTypeNV type) {
  switch (type) {
    case VK_COMPONENT_TYPE_FLOAT16_NV:
      return scalar_kind::f16;
    case VK_COMPONENT_TYPE_FLOAT32_NV:
      return scalar_kind::f32;
    case VK_COMPONENT_TYPE_UINT8_NV:
      return scalar_kind::u8;
    case VK_COMPONENT_TYPE_UINT16_NV:
      return scalar_kind::u16;
    case VK_COMPONENT_TYPE_UINT32_NV:
      return scalar_kind::u32;
    case VK_COMPONENT_TYPE_SINT32_NV:
      return scalar_kind::i32;
    case VK_COMPONENT_TYPE_UINT64_NV:
      return scalar_kind::u64;
    case VK_COMPONENT_TYPE_SINT64_NV:
      return scalar_kind::i64;
    default:
      return std::nullopt;
  }
}

inline std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
  std::uint32_t count = 0;
  check(vkEnumeratePhysicalDevices(instance, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> devices(count);
  check(vkEnumeratePhysicalDevices(instance, &count, devices.data()), "vkEnumeratePhysicalDevices");
  devices.resize(count);
  return devices;
}

inline bool has_extension(VkPhysicalDevice device, std::string_view name) {
  std::uint32_t count = 0;
  check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, nullptr),
        "vkEnumerateDeviceExtensionProperties");
  std::vector<VkExtensionProperties> extensions(count);
  check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, extensions.data()),
        "vkEnumerateDeviceExtensionProperties");
  return std::any_of(extensions.begin(), extensions.begin() + count,
                     [&](const VkExtensionProperties& e) { return name == e.extensionName; });
}

// The first queue family with compute; tessel records only compute work.
inline std::optional<std::uint32_t> compute_family(VkPhysicalDevice device,
                                                   std::uint32_t* timestamp_bits = nullptr) {
  std::uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(device, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(device, &count, families.data());
  for (std::uint32_t i = 0; i < count; ++i) {
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) == 0) continue;
    if (timestamp_bits) *timestamp_bits = families[i].timestampValidBits;
    return i;
  }
  return std::nullopt;
}

inline std::vector<coopmat_shape> read_coopmat_shapes(VkInstance instance,
                                                      VkPhysicalDevice device) {
  auto get = reinterpret_cast<PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV>(
      vkGetInstanceProcAddr(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV"));
  if (!get) return {};
  std::uint32_t count = 0;
  check(get(device, &count, nullptr), "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
  std::vector<VkCooperativeMatrixPropertiesNV> properties(
      count, structure<VkCooperativeMatrixPropertiesNV>(
                 VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV));
  check(get(device, &count, properties.data()), "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
  std::vector<coopmat_shape> shapes;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto& p = properties[i];
    if (p.scope != VK_SCOPE_SUBGROUP_NV) continue;
    const auto a = component_kind(p.AType), b = component_kind(p.BType),
               c = component_kind(p.CType), d = component_kind(p.DType);
    if (!a || !b || !c || !d) continue;
    shapes.push_back({p.MSize, p.NSize, p.KSize, *a, *b, *c, *d});
  }
  return shapes;
}

inline device_traits read_traits(VkInstance instance, VkPhysicalDevice device,
                                 std::uint32_t index) {
  const bool has_coopmat = has_extension(device, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  const bool has_sm_builtins = has_extension(device, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME);

  auto sm = structure<VkPhysicalDeviceShaderSMBuiltinsPropertiesNV>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV);
  auto p12 = structure<VkPhysicalDeviceVulkan12Properties>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES);
  p12.pNext = has_sm_builtins ? &sm : nullptr;
  auto p11 = structure<VkPhysicalDeviceVulkan11Properties>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES, &p12);
  auto properties =
      structure<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &p11);
  vkGetPhysicalDeviceProperties2(device, &properties);

  auto coopmat = structure<VkPhysicalDeviceCooperativeMatrixFeaturesNV>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
  auto f12 = structure<VkPhysicalDeviceVulkan12Features>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES, has_coopmat ? &coopmat : nullptr);
  auto f11 = structure<VkPhysicalDeviceVulkan11Features>(
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, &f12);
  auto features =
      structure<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f11);
  vkGetPhysicalDeviceFeatures2(device, &features);

  const VkPhysicalDeviceLimits& limits = properties.properties.limits;
  device_traits t;
  t.index = index;
  t.name = properties.properties.deviceName;
  t.driver = std::string(p12.driverName) + " " + p12.driverInfo;
  t.type = device_type_name(properties.properties.deviceType);
  t.api_version = properties.properties.apiVersion;
  t.vendor_id = properties.properties.vendorID;
  t.device_id = properties.properties.deviceID;
  t.subgroup_size = p11.subgroupSize;
  t.shared_memory_bytes = limits.maxComputeSharedMemorySize;
  t.push_constant_bytes = limits.maxPushConstantsSize;
  t.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
  t.max_storage_buffer_range = limits.maxStorageBufferRange;
  t.max_uniform_buffer_range = limits.maxUniformBufferRange;
  t.min_uniform_buffer_offset_alignment = limits.minUniformBufferOffsetAlignment;
  std::copy(std::begin(limits.maxComputeWorkGroupCount), std::end(limits.maxComputeWorkGroupCount),
            t.max_workgroup_count.begin());
  t.compute_units = has_sm_builtins ? sm.shaderSMCount : 0;
  t.timestamp_period_ns = limits.timestampPeriod;
  t.queue_family = compute_family(device, &t.timestamp_valid_bits).value_or(0);
  t.timestamps = t.timestamp_valid_bits != 0;
  std::memcpy(t.pipeline_cache_uuid.data(), properties.properties.pipelineCacheUUID,
              t.pipeline_cache_uuid.size());

  const auto add = [&](bool supported, feature f) {
    if (supported) t.features |= f;
  };
  add(f12.shaderFloat16, feature::float16_arithmetic);
  add(f12.shaderInt8, feature::int8_arithmetic);
  add(features.features.shaderInt16, feature::int16_arithmetic);
  add(features.features.shaderInt64, feature::int64_arithmetic);
  add(f12.storageBuffer8BitAccess, feature::storage_8bit);
  add(f11.storageBuffer16BitAccess, feature::storage_16bit);
  constexpr VkSubgroupFeatureFlags subgroup_ops = VK_SUBGROUP_FEATURE_BASIC_BIT |
                                                  VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
                                                  VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
  add((p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
          (p11.subgroupSupportedOperations & subgroup_ops) == subgroup_ops,
      feature::subgroup_arithmetic);
  add(has_coopmat && coopmat.cooperativeMatrix, feature::cooperative_matrix_nv);
  add(f12.uniformBufferStandardLayout, feature::uniform_standard_layout);
  add(f12.scalarBlockLayout, feature::scalar_block_layout);
  if (has(t.features, feature::cooperative_matrix_nv))
    t.coopmat_shapes = read_coopmat_shapes(instance, device);
  return t;
}

inline std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace detail

// Every physical device with a compute queue, in the instance's order.
inline std::vector<device_traits> enumerate_devices(VkInstance instance) {
  const std::vector<VkPhysicalDevice> devices = detail::physical_devices(instance);
  std::vector<device_traits> out;
  for (std::uint32_t i = 0; i < devices.size(); ++i)
    if (detail::compute_family(devices[i]))
      out.push_back(detail::read_traits(instance, devices[i], i));
  return out;
}

// The position in `devices` of the one `request` names: "" picks the first
// discrete device, else integrated, else virtual, else cpu; digits are a
// device_traits::index; anything else is a case-insensitive substring of the
// name. Throws tessel::error listing the devices when nothing matches.
inline std::size_t choose_device(const std::vector<device_traits>& devices,
                                 std::string_view request) {
  const auto fail = [&](std::string_view why) -> std::size_t {
    std::string text(why);
    text += "; devices:";
    if (devices.empty()) text += " none";
    for (std::size_t i = 0; i < devices.size(); ++i)
      text += "\n  " + std::to_string(i) + ": " + devices[i].name + " (" + devices[i].type + ", " +
              devices[i].driver + ")";
    throw error("choose device", text);
  };
  if (request.empty()) {
    for (std::string_view type : {"discrete", "integrated", "virtual", "cpu"})
      for (std::size_t i = 0; i < devices.size(); ++i)
        if (devices[i].type == type) return i;
    if (devices.empty()) fail("no Vulkan device with a compute queue");
    return 0;
  }
  if (std::all_of(request.begin(), request.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    std::uint32_t index = 0;
    const auto [end, status] =
        std::from_chars(request.data(), request.data() + request.size(), index);
    if (status == std::errc{} && end == request.data() + request.size())
      for (std::size_t i = 0; i < devices.size(); ++i)
        if (devices[i].index == index) return i;
    return fail("no device has index " + std::string(request));
  }
  const std::string needle = detail::lowercase(request);
  for (std::size_t i = 0; i < devices.size(); ++i)
    if (detail::lowercase(devices[i].name).find(needle) != std::string::npos) return i;
  return fail("no device name contains '" + std::string(request) + "'");
}

}  // namespace tessel::vk
