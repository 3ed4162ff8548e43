// One VkBuffer with its own VkDeviceMemory: the building block of device
// buffers, staging buffers and the recorder's parameter blocks. tessel
// allocates few, large buffers, so one allocation per buffer is fine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include <vulkan/vulkan.h>

#include "tessel/vk/context.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

class memory_buffer {
 public:
  memory_buffer() = default;
  // Host-visible buffers are required to be coherent and stay mapped, so
  // writes need no flush.
  memory_buffer(context& ctx, std::uint64_t bytes, VkBufferUsageFlags usage,
                VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred = 0)
      : ctx_(&ctx), device_(ctx.device_handle()), bytes_(bytes) {
    try {
      auto info = structure<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
      info.size = bytes;
      info.usage = usage;
      info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
      check(vkCreateBuffer(device_, &info, nullptr, &buffer_), "vkCreateBuffer");
      VkMemoryRequirements requirements;
      vkGetBufferMemoryRequirements(device_, buffer_, &requirements);
      auto allocate = structure<VkMemoryAllocateInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO);
      ctx.reserve_memory(requirements.size,
                         "vkAllocateMemory of " + std::to_string(bytes) + " bytes");
      reserved_ = requirements.size;
      allocate.allocationSize = requirements.size;
      allocate.memoryTypeIndex = ctx.memory_type(requirements.memoryTypeBits, required, preferred);
      check(vkAllocateMemory(device_, &allocate, nullptr, &memory_),
            "vkAllocateMemory of " + std::to_string(bytes) + " bytes");
      check(vkBindBufferMemory(device_, buffer_, memory_, 0), "vkBindBufferMemory");
      if (required & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        void* mapped = nullptr;
        check(vkMapMemory(device_, memory_, 0, VK_WHOLE_SIZE, 0, &mapped), "vkMapMemory");
        mapped_ = static_cast<std::byte*>(mapped);
      }
    } catch (...) {
      release();
      throw;
    }
  }
  memory_buffer(memory_buffer&& other) noexcept { swap(other); }
  memory_buffer& operator=(memory_buffer&& other) noexcept {
    memory_buffer moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~memory_buffer() { release(); }

  VkBuffer handle() const { return buffer_; }
  std::uint64_t bytes() const { return bytes_; }
  // The mapping of a host-visible buffer; nullptr otherwise.
  std::byte* mapped() const { return mapped_; }

 private:
  void swap(memory_buffer& other) noexcept {
    std::swap(ctx_, other.ctx_);
    std::swap(reserved_, other.reserved_);
    std::swap(device_, other.device_);
    std::swap(buffer_, other.buffer_);
    std::swap(memory_, other.memory_);
    std::swap(bytes_, other.bytes_);
    std::swap(mapped_, other.mapped_);
  }
  void release() noexcept {
    if (!device_) return;
    vkDestroyBuffer(device_, buffer_, nullptr);
    vkFreeMemory(device_, memory_, nullptr);
    buffer_ = VK_NULL_HANDLE;
    memory_ = VK_NULL_HANDLE;
    ctx_->release_memory(reserved_);
    reserved_ = 0;
  }

  context* ctx_ = nullptr;
  std::uint64_t reserved_ = 0;  // bytes counted against the context's memory limit
  VkDevice device_ = VK_NULL_HANDLE;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  std::uint64_t bytes_ = 0;
  std::byte* mapped_ = nullptr;
};

}  // namespace tessel::vk
