// A bare Vulkan instance for listing devices (`tessel info`, `dump --target
// device`): enumerating needs no logical device, so a device that cannot be
// opened is still listed.
#pragma once

#include <cstdlib>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "tessel/error.hpp"
#include "tessel/vk/device.hpp"
#include "tessel/vk/result.hpp"

namespace tessel::cli {

class bare_instance {
 public:
  bare_instance() {
    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "tessel";
    app.apiVersion = VK_API_VERSION_1_3;
    VkInstanceCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    info.pApplicationInfo = &app;
    vk::check(vkCreateInstance(&info, nullptr, &instance_), "vkCreateInstance");
  }
  bare_instance(const bare_instance&) = delete;
  bare_instance& operator=(const bare_instance&) = delete;
  ~bare_instance() { vkDestroyInstance(instance_, nullptr); }

  VkInstance get() const { return instance_; }

 private:
  VkInstance instance_ = VK_NULL_HANDLE;
};

// $TESSEL_DEVICE, or "" for the default choice.
inline std::string device_request() {
  const char* value = std::getenv("TESSEL_DEVICE");
  return value ? value : "";
}

// The traits of the device a context would open by default.
inline vk::device_traits default_device_traits() {
  const bare_instance instance;
  const std::vector<vk::device_traits> devices = vk::enumerate_devices(instance.get());
  return devices[vk::choose_device(devices, device_request())];
}

}  // namespace tessel::cli
