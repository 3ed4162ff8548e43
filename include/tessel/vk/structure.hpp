// Zero-initialized Vulkan structures with their sType (and pNext) set: brace
// initialization with only sType trips -Wmissing-field-initializers.
#pragma once

#include <vulkan/vulkan.h>

namespace tessel::vk {

template <class T>
T structure(VkStructureType type, void* next = nullptr) {
  T value{};
  value.sType = type;
  value.pNext = next;
  return value;
}

}  // namespace tessel::vk
