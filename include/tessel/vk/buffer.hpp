// Device buffers: a type-erased raw_buffer (element kind and count known at
// run time, for `tessel run`) and the typed buffer<T> that host ops and the
// recorder's typed front end take. Transfers go through a host-visible
// staging buffer and wait for completion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include <vulkan/vulkan.h>

#include "tessel/dsl/scalar.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/memory.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

// A range of a device buffer as a kernel binding sees it.
struct buffer_view {
  VkBuffer buffer = VK_NULL_HANDLE;
  std::uint64_t offset = 0, bytes = 0;
  scalar_kind element = scalar_kind::f32;
  std::uint64_t count = 0;
};

namespace detail {

// Makes earlier compute and transfer writes visible to a transfer, and
// orders the transfer after earlier reads (the previous submission may have
// been a recorder's).
inline void transfer_barrier(VkCommandBuffer command) {
  auto barrier = structure<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  vkCmdPipelineBarrier(command,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

}  // namespace detail

// A device-local storage buffer of `count` elements of one scalar kind.
class raw_buffer {
 public:
  // Throws tessel::error when count is 0 or the byte size exceeds the
  // device's maxStorageBufferRange, or when device memory runs out (the
  // context stays usable).
  raw_buffer(context& ctx, scalar_kind element, std::uint64_t count)
      : ctx_(&ctx), element_(element), count_(count), bytes_(checked_bytes(ctx, element, count)) {
    storage_ = memory_buffer(ctx, bytes_,
                             VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  }

  std::uint64_t size() const { return count_; }
  std::uint64_t bytes() const { return bytes_; }
  scalar_kind element() const { return element_; }
  VkBuffer handle() const { return storage_.handle(); }
  buffer_view view() const { return {storage_.handle(), 0, bytes_, element_, count_}; }

  // `data` must hold exactly bytes() bytes.
  void upload(std::span<const std::byte> data) {
    tessel::require(data.size() == bytes_, "buffer upload", "byte count", data.size(),
                    "must equal the buffer's " + std::to_string(bytes_) + " bytes");
    memory_buffer staging = make_staging(VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    std::memcpy(staging.mapped(), data.data(), data.size());
    copy_from(staging);
  }

  std::vector<std::byte> download() const {
    memory_buffer staging = make_staging(VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    const VkBufferCopy region{0, 0, bytes_};
    ctx_->run_once([&](VkCommandBuffer command) {
      detail::transfer_barrier(command);
      vkCmdCopyBuffer(command, storage_.handle(), staging.handle(), 1, &region);
      auto to_host = structure<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
      to_host.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      to_host.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      vkCmdPipelineBarrier(command, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0,
                           1, &to_host, 0, nullptr, 0, nullptr);
    });
    std::vector<std::byte> out(bytes_);
    std::memcpy(out.data(), staging.mapped(), out.size());
    return out;
  }

  // Sets every element to the bytes of `element` (one element's size).
  void fill(std::span<const std::byte> element) {
    tessel::require(element.size() == kind_size(element_), "buffer fill", "pattern bytes",
                    element.size(),
                    "must equal the element size of " + std::string(kind_name(element_)));
    memory_buffer staging = make_staging(VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    for (std::uint64_t i = 0; i < count_; ++i)
      std::memcpy(staging.mapped() + i * element.size(), element.data(), element.size());
    copy_from(staging);
  }

 private:
  static std::uint64_t checked_bytes(const context& ctx, scalar_kind element, std::uint64_t count) {
    const std::uint64_t size = kind_size(element);
    const std::uint64_t limit = ctx.device().max_storage_buffer_range;
    tessel::require(count != 0, "buffer", "element count", count, "must be positive");
    tessel::require(count <= limit / size, "buffer", "element count", count,
                    "of " + std::string(kind_name(element)) + " exceeds the device's " +
                        "maxStorageBufferRange of " + std::to_string(limit) + " bytes");
    return count * size;
  }

  memory_buffer make_staging(VkBufferUsageFlags usage) const {
    return memory_buffer(
        *ctx_, bytes_, usage,
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  }

  void copy_from(const memory_buffer& staging) {
    const VkBufferCopy region{0, 0, bytes_};
    ctx_->run_once([&](VkCommandBuffer command) {
      detail::transfer_barrier(command);
      vkCmdCopyBuffer(command, staging.handle(), storage_.handle(), 1, &region);
    });
  }

  context* ctx_;
  scalar_kind element_;
  std::uint64_t count_;
  std::uint64_t bytes_;
  memory_buffer storage_;
};

// A device buffer of `count` values of T; move-only like raw_buffer.
template <scalar T>
class buffer {
 public:
  buffer(context& ctx, std::uint64_t count) : raw_(ctx, scalar_traits<T>::kind, count) {}

  std::uint64_t size() const { return raw_.size(); }
  std::uint64_t bytes() const { return raw_.bytes(); }
  buffer_view view() const { return raw_.view(); }
  raw_buffer& raw() { return raw_; }
  const raw_buffer& raw() const { return raw_; }

  // `values` must hold exactly size() elements.
  void upload(std::span<const T> values) {
    tessel::require(values.size() == size(), "buffer upload", "element count", values.size(),
                    "must equal the buffer's " + std::to_string(size()) + " elements");
    raw_.upload(std::as_bytes(values));
  }
  std::vector<T> download() const {
    const std::vector<std::byte> bytes = raw_.download();
    std::vector<T> out(static_cast<std::size_t>(size()));
    std::memcpy(out.data(), bytes.data(), bytes.size());
    return out;
  }
  // Sets every element to `value` (tests poison outputs with NaN this way).
  void fill(T value) { raw_.fill(std::as_bytes(std::span<const T, 1>(&value, 1))); }

 private:
  raw_buffer raw_;
};

}  // namespace tessel::vk
