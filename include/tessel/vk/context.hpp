// The Vulkan context: instance (optionally with the Khronos validation layer,
// whose warnings and errors are recorded), the chosen device with one compute
// queue and only the features tessel uses, and the pipeline cache.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <vulkan/vulkan.h>

#include "tessel/dsl/target.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/device.hpp"
#include "tessel/vk/pipeline.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

namespace detail {
inline std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}
}  // namespace detail

struct context_options {
  // "" picks the default device (see choose_device); defaults to $TESSEL_DEVICE.
  std::string device = detail::env("TESSEL_DEVICE");
  // Defaults to TESSEL_VALIDATION=1.
  std::optional<bool> validation;
  // Defaults to $XDG_CACHE_HOME/tessel, else ~/.cache/tessel; an empty path
  // keeps the pipeline cache in memory only.
  std::optional<std::filesystem::path> pipeline_cache_dir;
  // The most bytes of device memory (every vkAllocateMemory: buffers,
  // staging, parameter blocks) the context holds at once; 0: no limit but the
  // device's. An allocation past it fails as the driver's would, with
  // VK_ERROR_OUT_OF_DEVICE_MEMORY: a budget on a shared device, and how the
  // tests provoke out-of-memory without exhausting the machine.
  std::uint64_t device_memory_limit = 0;
};

class context {
 public:
  explicit context(const context_options& options = {})
      : memory_limit_(options.device_memory_limit) {
    try {
      create(options);
    } catch (...) {
      release();
      throw;
    }
  }
  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() { release(); }

  const device_traits& device() const { return traits_; }
  const tessel::target& target() const { return target_; }

  VkInstance instance() const { return instance_; }
  VkPhysicalDevice physical_device() const { return physical_; }
  VkDevice device_handle() const { return device_; }
  VkQueue queue() const { return queue_; }
  std::uint32_t queue_family() const { return traits_.queue_family; }

  bool validation_enabled() const { return messenger_ != VK_NULL_HANDLE; }
  std::vector<std::string> validation_messages() const {
    const std::lock_guard lock(messages_mutex_);
    return messages_;
  }
  void clear_validation_messages() {
    const std::lock_guard lock(messages_mutex_);
    messages_.clear();
  }

  // A memory type allowed by `type_bits` with all `required` properties,
  // preferring one that also has `preferred`.
  std::uint32_t memory_type(std::uint32_t type_bits, VkMemoryPropertyFlags required,
                            VkMemoryPropertyFlags preferred = 0) const {
    std::optional<std::uint32_t> fallback;
    for (std::uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
      if ((type_bits & (1u << i)) == 0) continue;
      const VkMemoryPropertyFlags flags = memory_.memoryTypes[i].propertyFlags;
      if ((flags & required) != required) continue;
      if ((flags & preferred) == preferred) return i;
      if (!fallback) fallback = i;
    }
    if (!fallback)
      throw error("memory type", "device '" + traits_.name +
                                     "' has no memory type with properties " +
                                     std::to_string(required));
    return *fallback;
  }

  // Counts `bytes` of an allocation about to be made against
  // device_memory_limit; throws tessel::error(`what`, ...) carrying
  // VK_ERROR_OUT_OF_DEVICE_MEMORY when they do not fit. Every successful call
  // is paired with release_memory(bytes).
  void reserve_memory(std::uint64_t bytes, std::string_view what) {
    std::uint64_t used = memory_used_.load();
    do {
      if (memory_limit_ != 0 && bytes > memory_limit_ - used)
        throw error(what,
                    "VK_ERROR_OUT_OF_DEVICE_MEMORY (-2): the context's device_memory_limit of " +
                        std::to_string(memory_limit_) + " bytes has " +
                        std::to_string(memory_limit_ - used) + " left",
                    VK_ERROR_OUT_OF_DEVICE_MEMORY);
    } while (!memory_used_.compare_exchange_weak(used, used + bytes));
  }
  void release_memory(std::uint64_t bytes) noexcept { memory_used_ -= bytes; }
  // Bytes of device memory this context's buffers hold now.
  std::uint64_t memory_in_use() const { return memory_used_.load(); }

  // Throws tessel::error naming the variant and the feature(s) it needs on
  // this device's target that the device does not support.
  void require(const variant_info& variant) const { require_features(traits_, variant); }

  // The pipeline of `variant` with `spec`, created once; see pipeline_cache.
  const vk::pipeline& pipeline(const variant_info& variant, std::span<const spec_value> spec = {}) {
    return cache_->get(variant, spec);
  }
  vk::pipeline_cache& pipelines() { return *cache_; }

  // Submits to the queue; vkQueueSubmit needs the queue externally
  // synchronized, so every submission of this context goes through here.
  void submit(const VkSubmitInfo& info, VkFence fence) {
    const std::lock_guard lock(queue_mutex_);
    check(vkQueueSubmit(queue_, 1, &info, fence), "vkQueueSubmit");
  }

  // Records `commands` into a one-time command buffer, submits it and waits
  // (uploads, downloads, fills).
  void run_once(const std::function<void(VkCommandBuffer)>& commands) {
    const std::lock_guard lock(transfer_mutex_);
    auto allocate =
        structure<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
    allocate.commandPool = transfer_pool_;
    allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    allocate.commandBufferCount = 1;
    VkCommandBuffer command = VK_NULL_HANDLE;
    check(vkAllocateCommandBuffers(device_, &allocate, &command), "vkAllocateCommandBuffers");
    VkFence fence = VK_NULL_HANDLE;
    try {
      auto begin = structure<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
      begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
      check(vkBeginCommandBuffer(command, &begin), "vkBeginCommandBuffer");
      commands(command);
      check(vkEndCommandBuffer(command), "vkEndCommandBuffer");
      const auto fence_info = structure<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
      check(vkCreateFence(device_, &fence_info, nullptr, &fence), "vkCreateFence");
      auto submit_info = structure<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
      submit_info.commandBufferCount = 1;
      submit_info.pCommandBuffers = &command;
      submit(submit_info, fence);
      check(vkWaitForFences(device_, 1, &fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    } catch (...) {
      vkDestroyFence(device_, fence, nullptr);
      vkFreeCommandBuffers(device_, transfer_pool_, 1, &command);
      throw;
    }
    vkDestroyFence(device_, fence, nullptr);
    vkFreeCommandBuffers(device_, transfer_pool_, 1, &command);
  }

 private:
  static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT,
                                                   VkDebugUtilsMessageTypeFlagsEXT,
                                                   const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                   void* user) {
    auto* self = static_cast<context*>(user);
    const std::string text = data && data->pMessage ? data->pMessage : "(no message)";
    std::cerr << "tessel validation: " << text << "\n";
    const std::lock_guard lock(self->messages_mutex_);
    self->messages_.push_back(text);
    return VK_FALSE;
  }

  static bool has_layer(std::string_view name) {
    std::uint32_t count = 0;
    check(vkEnumerateInstanceLayerProperties(&count, nullptr),
          "vkEnumerateInstanceLayerProperties");
    std::vector<VkLayerProperties> layers(count);
    check(vkEnumerateInstanceLayerProperties(&count, layers.data()),
          "vkEnumerateInstanceLayerProperties");
    return std::any_of(layers.begin(), layers.begin() + count,
                       [&](const VkLayerProperties& l) { return name == l.layerName; });
  }

  static std::optional<std::filesystem::path> default_cache_dir() {
    const std::string xdg = detail::env("XDG_CACHE_HOME");
    if (!xdg.empty()) return std::filesystem::path(xdg) / "tessel";
    const std::string home = detail::env("HOME");
    if (!home.empty()) return std::filesystem::path(home) / ".cache" / "tessel";
    return std::nullopt;
  }

  void create(const context_options& options) {
    const bool validation = options.validation.value_or(detail::env("TESSEL_VALIDATION") == "1");
    create_instance(validation);
    const std::vector<device_traits> devices = enumerate_devices(instance_);
    traits_ = devices[choose_device(devices, options.device)];
    target_ = traits_.target();
    tessel::require(traits_.api_version >= VK_API_VERSION_1_2, traits_.name, "Vulkan API version",
                    std::to_string(VK_API_VERSION_MAJOR(traits_.api_version)) + "." +
                        std::to_string(VK_API_VERSION_MINOR(traits_.api_version)),
                    "must be at least 1.2");
    physical_ = detail::physical_devices(instance_)[traits_.index];
    vkGetPhysicalDeviceMemoryProperties(physical_, &memory_);
    create_device();
    auto pool = structure<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
    pool.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
    pool.queueFamilyIndex = traits_.queue_family;
    check(vkCreateCommandPool(device_, &pool, nullptr, &transfer_pool_), "vkCreateCommandPool");
    cache_.emplace(device_, traits_,
                   options.pipeline_cache_dir ? options.pipeline_cache_dir : default_cache_dir());
  }

  void create_instance(bool validation) {
    std::uint32_t loader_version = 0;
    check(vkEnumerateInstanceVersion(&loader_version), "vkEnumerateInstanceVersion");
    tessel::require(loader_version >= VK_API_VERSION_1_3, "create instance",
                    "Vulkan loader version",
                    std::to_string(VK_API_VERSION_MAJOR(loader_version)) + "." +
                        std::to_string(VK_API_VERSION_MINOR(loader_version)),
                    "must be at least 1.3");
    constexpr const char* layer = "VK_LAYER_KHRONOS_validation";
    constexpr const char* extension = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    if (validation && !has_layer(layer))
      throw error("create instance",
                  "validation was requested but VK_LAYER_KHRONOS_validation is not installed "
                  "(install the vulkan-validationlayers package, or unset TESSEL_VALIDATION)");

    auto messenger = structure<VkDebugUtilsMessengerCreateInfoEXT>(
        VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT);
    messenger.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                                VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    messenger.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                            VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                            VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
    messenger.pfnUserCallback = &context::on_message;
    messenger.pUserData = this;

    auto app = structure<VkApplicationInfo>(VK_STRUCTURE_TYPE_APPLICATION_INFO);
    app.pApplicationName = "tessel";
    app.pEngineName = "tessel";
    app.apiVersion = VK_API_VERSION_1_3;
    auto info = structure<VkInstanceCreateInfo>(VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO);
    info.pApplicationInfo = &app;
    if (validation) {
      // Chained so that messages about instance creation itself are caught.
      info.pNext = &messenger;
      info.enabledLayerCount = 1;
      info.ppEnabledLayerNames = &layer;
      info.enabledExtensionCount = 1;
      info.ppEnabledExtensionNames = &extension;
    }
    check(vkCreateInstance(&info, nullptr, &instance_), "vkCreateInstance");
    if (!validation) return;
    auto create_messenger = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance_, "vkCreateDebugUtilsMessengerEXT"));
    if (!create_messenger)
      throw error("create instance", "VK_EXT_debug_utils is not available with validation");
    check(create_messenger(instance_, &messenger, nullptr, &messenger_),
          "vkCreateDebugUtilsMessengerEXT");
  }

  void create_device() {
    const bool has_coopmat = has(traits_.features, feature::cooperative_matrix_nv);
    auto coopmat = structure<VkPhysicalDeviceCooperativeMatrixFeaturesNV>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
    auto f13 = structure<VkPhysicalDeviceVulkan13Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES);
    auto f12 = structure<VkPhysicalDeviceVulkan12Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
    auto f11 = structure<VkPhysicalDeviceVulkan11Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, &f12);
    auto supported =
        structure<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f11);
    const bool has_13 = traits_.api_version >= VK_API_VERSION_1_3;
    void** tail = &f12.pNext;
    if (has_13) {
      *tail = &f13;
      tail = &f13.pNext;
    }
    if (has_coopmat) *tail = &coopmat;
    vkGetPhysicalDeviceFeatures2(physical_, &supported);

    // Only what tessel's kernels use: anything else would let a kernel
    // depend on a feature tessel's targets do not describe.
    auto enable_coopmat = structure<VkPhysicalDeviceCooperativeMatrixFeaturesNV>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV);
    enable_coopmat.cooperativeMatrix = coopmat.cooperativeMatrix;
    auto enable13 = structure<VkPhysicalDeviceVulkan13Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES);
    enable13.subgroupSizeControl = f13.subgroupSizeControl;
    enable13.computeFullSubgroups = f13.computeFullSubgroups;
    auto enable12 = structure<VkPhysicalDeviceVulkan12Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
    enable12.shaderFloat16 = f12.shaderFloat16;
    enable12.shaderInt8 = f12.shaderInt8;
    enable12.storageBuffer8BitAccess = f12.storageBuffer8BitAccess;
    enable12.uniformAndStorageBuffer8BitAccess = f12.uniformAndStorageBuffer8BitAccess;
    enable12.uniformBufferStandardLayout = f12.uniformBufferStandardLayout;
    enable12.scalarBlockLayout = f12.scalarBlockLayout;
    auto enable11 = structure<VkPhysicalDeviceVulkan11Features>(
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, &enable12);
    enable11.storageBuffer16BitAccess = f11.storageBuffer16BitAccess;
    enable11.uniformAndStorageBuffer16BitAccess = f11.uniformAndStorageBuffer16BitAccess;
    auto enable = structure<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                                       &enable11);
    enable.features.shaderInt16 = supported.features.shaderInt16;
    enable.features.shaderInt64 = supported.features.shaderInt64;
    tail = &enable12.pNext;
    if (has_13) {
      *tail = &enable13;
      tail = &enable13.pNext;
    }
    if (has_coopmat) *tail = &enable_coopmat;

    const float priority = 1.0f;
    auto queue = structure<VkDeviceQueueCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO);
    queue.queueFamilyIndex = traits_.queue_family;
    queue.queueCount = 1;
    queue.pQueuePriorities = &priority;
    const char* coopmat_extension = VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME;
    auto info = structure<VkDeviceCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, &enable);
    info.queueCreateInfoCount = 1;
    info.pQueueCreateInfos = &queue;
    if (has_coopmat) {
      info.enabledExtensionCount = 1;
      info.ppEnabledExtensionNames = &coopmat_extension;
    }
    check(vkCreateDevice(physical_, &info, nullptr, &device_), "vkCreateDevice " + traits_.name);
    vkGetDeviceQueue(device_, traits_.queue_family, 0, &queue_);
  }

  // Safe on a partly created context: every handle starts null.
  void release() noexcept {
    if (device_) vkDeviceWaitIdle(device_);
    cache_.reset();
    if (device_) vkDestroyCommandPool(device_, transfer_pool_, nullptr);
    vkDestroyDevice(device_, nullptr);
    if (messenger_) {
      auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
          vkGetInstanceProcAddr(instance_, "vkDestroyDebugUtilsMessengerEXT"));
      if (destroy) destroy(instance_, messenger_, nullptr);
    }
    vkDestroyInstance(instance_, nullptr);
    device_ = VK_NULL_HANDLE;
    messenger_ = VK_NULL_HANDLE;
    instance_ = VK_NULL_HANDLE;
  }

  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  VkCommandPool transfer_pool_ = VK_NULL_HANDLE;
  VkPhysicalDeviceMemoryProperties memory_{};
  device_traits traits_;
  tessel::target target_;
  std::optional<pipeline_cache> cache_;
  std::uint64_t memory_limit_;
  std::atomic<std::uint64_t> memory_used_{0};
  std::mutex queue_mutex_;
  std::mutex transfer_mutex_;
  mutable std::mutex messages_mutex_;
  std::vector<std::string> messages_;
};

}  // namespace tessel::vk
