// The recorder: one command buffer of dispatches and timestamps, submitted
// at once. Dispatches are validated before anything is recorded, so a
// failed check leaves the command buffer as it was.
//
// Ordering: every dispatch after the first in a submission is preceded by a
// compute -> compute memory barrier (shader writes -> shader reads and
// writes). That makes dependent dispatches correct without the caller
// naming dependencies, at the price of no overlap between independent ones.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <vulkan/vulkan.h>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/memory.hpp"
#include "tessel/vk/pipeline.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

namespace detail {

template <class D, class... Elements, std::size_t... I>
constexpr bool elements_match(std::index_sequence<I...>) {
  return (std::is_same_v<Elements,
                         typename std::tuple_element_t<I, typename D::bindings::list>::element> &&
          ...);
}

// What the typed front end takes for one binding: a buffer, or a pointer to
// one where nullptr leaves the binding unused (see recorder::unused_binding).
template <class A>
struct binding_argument;
template <class E>
struct binding_argument<buffer<E>> {
  using element = E;
};
template <class E>
struct binding_argument<const buffer<E>*> {
  using element = E;
};
template <class E>
struct binding_argument<buffer<E>*> {
  using element = E;
};
template <class A>
using argument_element = typename binding_argument<std::remove_cvref_t<A>>::element;

}  // namespace detail

// A recorder is used by one thread at a time; several recorders of one
// context may record and submit concurrently.
class recorder {
 public:
  // Timestamps one submission can hold.
  static constexpr std::uint32_t max_timestamps = 256;

  explicit recorder(context& ctx) : ctx_(&ctx), device_(ctx.device_handle()) {
    try {
      auto pool = structure<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
      pool.queueFamilyIndex = ctx.queue_family();
      check(vkCreateCommandPool(device_, &pool, nullptr, &command_pool_), "vkCreateCommandPool");
      auto allocate =
          structure<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
      allocate.commandPool = command_pool_;
      allocate.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
      allocate.commandBufferCount = 1;
      check(vkAllocateCommandBuffers(device_, &allocate, &command_), "vkAllocateCommandBuffers");
      const auto fence = structure<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
      check(vkCreateFence(device_, &fence, nullptr, &fence_), "vkCreateFence");
      if (ctx.device().timestamps) {
        auto query = structure<VkQueryPoolCreateInfo>(VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO);
        query.queryType = VK_QUERY_TYPE_TIMESTAMP;
        query.queryCount = max_timestamps;
        check(vkCreateQueryPool(device_, &query, nullptr, &queries_), "vkCreateQueryPool");
      }
    } catch (...) {
      release();
      throw;
    }
  }
  recorder(const recorder&) = delete;
  recorder& operator=(const recorder&) = delete;
  ~recorder() { release(); }

  // Records one dispatch of `variant`. `buffers` are in binding order;
  // `params` is the variant's parameter block (empty when it has none).
  // Throws tessel::error before recording anything when an argument is wrong.
  void dispatch(const variant_info& variant, std::span<const spec_value> spec,
                std::span<const buffer_view> buffers, std::span<const std::byte> params,
                extent3 groups) {
    validate(variant, buffers, params, groups);
    const vk::pipeline& p = ctx_->pipeline(variant, spec);
    begin();
    const VkDescriptorSet set = allocate_set(p, variant.bindings.size());
    std::vector<VkDescriptorBufferInfo> infos;
    infos.reserve(buffers.size() + 1);
    for (const buffer_view& b : buffers) infos.push_back({b.buffer, b.offset, b.bytes});
    if (p.placement == params_placement::uniform_buffer) infos.push_back(write_params(params));
    std::vector<VkWriteDescriptorSet> writes;
    for (std::uint32_t i = 0; i < infos.size(); ++i) {
      auto write = structure<VkWriteDescriptorSet>(VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET);
      write.dstSet = set;
      write.dstBinding = i;
      write.descriptorCount = 1;
      write.descriptorType = i < buffers.size() ? VK_DESCRIPTOR_TYPE_STORAGE_BUFFER
                                                : VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER;
      write.pBufferInfo = &infos[i];
      writes.push_back(write);
    }
    vkUpdateDescriptorSets(device_, static_cast<std::uint32_t>(writes.size()), writes.data(), 0,
                           nullptr);

    order_after_previous_commands();
    vkCmdBindPipeline(command_, VK_PIPELINE_BIND_POINT_COMPUTE, p.handle);
    vkCmdBindDescriptorSets(command_, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0,
                            nullptr);
    if (p.placement == params_placement::push_constant) {
      std::vector<std::byte> padded(detail::push_constant_range(params.size()));
      std::memcpy(padded.data(), params.data(), params.size());
      vkCmdPushConstants(command_, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                         static_cast<std::uint32_t>(padded.size()), padded.data());
    }
    vkCmdDispatch(command_, groups.x, groups.y, groups.z);
    ++dispatches_;
  }

  // Records a device-to-device copy of src into dst (same byte count), ordered
  // after everything recorded before it. Benchmarks use it to measure the
  // memory bandwidth that bounds memory-bound kernels.
  void copy(const buffer_view& src, const buffer_view& dst) {
    tessel::require(src.bytes == dst.bytes, "copy", "dst bytes", dst.bytes,
                    "must equal src bytes " + std::to_string(src.bytes));
    begin();
    order_after_previous_commands();
    const VkBufferCopy region{src.offset, dst.offset, src.bytes};
    vkCmdCopyBuffer(command_, src.buffer, dst.buffer, 1, &region);
  }

  // The device this recorder submits to.
  const device_traits& device() const { return ctx_->device(); }

  // The typed front end: binding element types and the parameter block are
  // checked at compile time against description D. Each binding takes a
  // buffer<E>, or a pointer to one: nullptr binds unused_binding(E), for
  // bindings a specialization constant switches off (an absent mask).
  template <kernel_description D, class Params, class... Arguments>
  void dispatch(const Params& params, std::span<const spec_value> spec, extent3 groups,
                const Arguments&... buffers) {
    static_assert(std::is_same_v<Params, params_of<D>>,
                  "the parameter block differs from the description's params type");
    check_elements<D, detail::argument_element<Arguments>...>();
    const std::array<buffer_view, sizeof...(Arguments)> views{view_of(buffers)...};
    dispatch(info<D>(), spec, views, std::as_bytes(std::span<const Params, 1>(&params, 1)), groups);
  }

  // The same for descriptions without a parameter block.
  template <kernel_description D, class... Arguments>
  void dispatch(std::span<const spec_value> spec, extent3 groups, const Arguments&... buffers) {
    static_assert(std::is_void_v<params_of<D>>,
                  "this description has a parameter block: pass it as the first argument");
    check_elements<D, detail::argument_element<Arguments>...>();
    const std::array<buffer_view, sizeof...(Arguments)> views{view_of(buffers)...};
    dispatch(info<D>(), spec, views, {}, groups);
  }

  // A view, with element type `element`, of a small buffer the recorder owns:
  // what a binding the kernel never accesses is bound to, since Vulkan needs
  // a valid buffer behind every declared binding.
  buffer_view unused_binding(scalar_kind element) {
    if (unused_.handle() == VK_NULL_HANDLE)
      unused_ = memory_buffer(*ctx_, unused_bytes, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                              VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    return {unused_.handle(), 0, unused_bytes, element, unused_bytes / kind_size(element)};
  }

  // The target of the device this recorder records for.
  const tessel::target& target() const { return ctx_->target(); }

  // Writes a timestamp once all previously recorded work is done; returns
  // its index for elapsed_ms().
  std::uint32_t timestamp() {
    tessel::require(queries_ != VK_NULL_HANDLE, "timestamp", "device", ctx_->device().name,
                    "does not write timestamps on its compute queue");
    tessel::require(timestamps_ < max_timestamps, "timestamp", "count", timestamps_ + 1,
                    "must be <= " + std::to_string(max_timestamps) + " per submission");
    begin();
    vkCmdWriteTimestamp(command_, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, queries_, timestamps_);
    return timestamps_++;
  }

  // Submits what was recorded, waits for it, reads the timestamps, and makes
  // the recorder ready for the next submission.
  void submit_and_wait() {
    begin();
    check(vkEndCommandBuffer(command_), "vkEndCommandBuffer");
    recording_ = false;
    auto submit = structure<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
    submit.commandBufferCount = 1;
    submit.pCommandBuffers = &command_;
    check(vkResetFences(device_, 1, &fence_), "vkResetFences");
    ctx_->submit(submit, fence_);
    check(vkWaitForFences(device_, 1, &fence_, VK_TRUE, UINT64_MAX), "vkWaitForFences");
    results_.assign(timestamps_, 0);
    if (timestamps_ != 0)
      check(vkGetQueryPoolResults(device_, queries_, 0, timestamps_,
                                  results_.size() * sizeof(std::uint64_t), results_.data(),
                                  sizeof(std::uint64_t),
                                  VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
            "vkGetQueryPoolResults");
    reset();
  }

  // Milliseconds between two timestamps of the last submission.
  double elapsed_ms(std::uint32_t begin, std::uint32_t end) const {
    const auto count = static_cast<std::uint32_t>(results_.size());
    tessel::require(begin < count, "elapsed_ms", "begin", begin,
                    "must be a timestamp of the last submission (" + std::to_string(count) + ")");
    tessel::require(end < count, "elapsed_ms", "end", end,
                    "must be a timestamp of the last submission (" + std::to_string(count) + ")");
    const std::uint32_t bits = ctx_->device().timestamp_valid_bits;
    const std::uint64_t mask = bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
    const std::uint64_t ticks = ((results_[end] & mask) - (results_[begin] & mask)) & mask;
    return static_cast<double>(ticks) * ctx_->device().timestamp_period_ns * 1e-6;
  }

  // Dispatches recorded since the last submission.
  std::uint32_t dispatch_count() const { return dispatches_; }

 private:
  static constexpr std::uint64_t unused_bytes = 16;

  template <class E>
  buffer_view view_of(const buffer<E>& b) {
    return b.view();
  }
  template <class E>
  buffer_view view_of(const buffer<E>* b) {
    return b ? b->view() : unused_binding(scalar_traits<E>::kind);
  }

  template <class D, class... Elements>
  static constexpr void check_elements() {
    static_assert(sizeof...(Elements) == D::bindings::count,
                  "the number of buffers differs from the description's binding count");
    if constexpr (sizeof...(Elements) == D::bindings::count)
      static_assert(detail::elements_match<D, Elements...>(std::index_sequence_for<Elements...>{}),
                    "buffer element type differs from the binding's declared type");
  }

  void validate(const variant_info& variant, std::span<const buffer_view> buffers,
                std::span<const std::byte> params, extent3 groups) const {
    const std::string_view op = variant.name;
    tessel::require(
        buffers.size() == variant.bindings.size(), op, "buffer count", buffers.size(),
        "must equal the variant's " + std::to_string(variant.bindings.size()) + " bindings");
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      const binding_info& b = variant.bindings[i];
      tessel::require(buffers[i].element == b.element, op,
                      "buffer '" + std::string(b.name) + "' element type",
                      kind_name(buffers[i].element),
                      "must be " + std::string(kind_name(b.element)) + " as the binding declares");
      tessel::require(buffers[i].buffer != VK_NULL_HANDLE && buffers[i].bytes != 0, op,
                      "buffer '" + std::string(b.name) + "' bytes", buffers[i].bytes,
                      "must be positive");
    }
    const std::size_t expected = variant.params ? variant.params->size : 0;
    tessel::require(params.size() == expected, op, "parameter block bytes", params.size(),
                    "must equal the variant's " + std::to_string(expected));
    const auto& limit = ctx_->device().max_workgroup_count;
    const std::uint32_t counts[] = {groups.x, groups.y, groups.z};
    static constexpr std::string_view axes[] = {"groups.x", "groups.y", "groups.z"};
    for (std::size_t a = 0; a < 3; ++a)
      tessel::require(counts[a] != 0 && counts[a] <= limit[a], op, axes[a], counts[a],
                      "must be in 1.." + std::to_string(limit[a]) + " (maxComputeWorkGroupCount)");
  }

  // Each command reads what the commands before it wrote: dispatches and
  // copies in one submission run one after the other.
  void order_after_previous_commands() {
    if (commands_++ == 0) return;
    auto barrier = structure<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                            VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    constexpr VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(command_, stages, stages, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  }

  void begin() {
    if (recording_) return;
    auto info = structure<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
    info.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    check(vkBeginCommandBuffer(command_, &info), "vkBeginCommandBuffer");
    recording_ = true;
    if (queries_) vkCmdResetQueryPool(command_, queries_, 0, max_timestamps);
    // Uploads and earlier submissions finished before this one starts, but
    // their writes still need making visible to this submission's shaders.
    auto barrier = structure<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    vkCmdPipelineBarrier(
        command_, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  }

  // Descriptor pools are used up in order and reset together after a
  // submission; counts are tracked here so a pool is never over-allocated.
  struct descriptor_pool {
    VkDescriptorPool handle = VK_NULL_HANDLE;
    std::uint32_t storage_capacity = 0;
    std::uint32_t sets = 0, storage = 0, uniform = 0;  // still free
  };
  static constexpr std::uint32_t pool_sets = 64, pool_storage = 512, pool_uniform = 64;

  VkDescriptorSet allocate_set(const vk::pipeline& pipeline, std::size_t storage) {
    const auto need_storage = static_cast<std::uint32_t>(storage);
    const std::uint32_t need_uniform =
        pipeline.placement == params_placement::uniform_buffer ? 1 : 0;
    const auto fits = [&](const descriptor_pool& p) {
      return p.sets >= 1 && p.storage >= need_storage && p.uniform >= need_uniform;
    };
    while (pool_index_ < pools_.size() && !fits(pools_[pool_index_])) ++pool_index_;
    if (pool_index_ == pools_.size()) {
      const std::uint32_t capacity = std::max(pool_storage, need_storage);
      descriptor_pool p{VK_NULL_HANDLE, capacity, pool_sets, capacity, pool_uniform};
      const VkDescriptorPoolSize sizes[] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, p.storage},
                                            {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, p.uniform}};
      auto info =
          structure<VkDescriptorPoolCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO);
      info.maxSets = p.sets;
      info.poolSizeCount = 2;
      info.pPoolSizes = sizes;
      check(vkCreateDescriptorPool(device_, &info, nullptr, &p.handle), "vkCreateDescriptorPool");
      pools_.push_back(p);
    }
    descriptor_pool& p = pools_[pool_index_];
    auto info =
        structure<VkDescriptorSetAllocateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO);
    info.descriptorPool = p.handle;
    info.descriptorSetCount = 1;
    info.pSetLayouts = &pipeline.set_layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    check(vkAllocateDescriptorSets(device_, &info, &set), "vkAllocateDescriptorSets");
    p.sets -= 1;
    p.storage -= need_storage;
    p.uniform -= need_uniform;
    return set;
  }

  // Copies a parameter block into this submission's host-visible uniform
  // memory at the device's minUniformBufferOffsetAlignment.
  VkDescriptorBufferInfo write_params(std::span<const std::byte> params) {
    const std::uint64_t alignment =
        std::max<std::uint64_t>(ctx_->device().min_uniform_buffer_offset_alignment, 16);
    std::uint64_t offset = (uniform_used_ + alignment - 1) / alignment * alignment;
    if (uniforms_.empty() || offset + params.size() > uniforms_.back().bytes()) {
      // Earlier chunks stay alive: descriptors recorded in this submission
      // still point into them.
      uniforms_.emplace_back(
          *ctx_, std::max<std::uint64_t>(uniform_chunk, params.size()),
          VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT,
          VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
      offset = 0;
    }
    std::memcpy(uniforms_.back().mapped() + offset, params.data(), params.size());
    uniform_used_ = offset + params.size();
    return {uniforms_.back().handle(), offset, params.size()};
  }
  static constexpr std::uint64_t uniform_chunk = 64 * 1024;

  void reset() {
    for (descriptor_pool& p : pools_) {
      vkResetDescriptorPool(device_, p.handle, 0);
      p.sets = pool_sets;
      p.storage = p.storage_capacity;
      p.uniform = pool_uniform;
    }
    pool_index_ = 0;
    if (uniforms_.size() > 1) uniforms_.erase(uniforms_.begin(), uniforms_.end() - 1);
    uniform_used_ = 0;
    dispatches_ = 0;
    commands_ = 0;
    timestamps_ = 0;
    check(vkResetCommandPool(device_, command_pool_, 0), "vkResetCommandPool");
  }

  void release() noexcept {
    if (recording_) {
      vkEndCommandBuffer(command_);
      recording_ = false;
    }
    for (descriptor_pool& p : pools_) vkDestroyDescriptorPool(device_, p.handle, nullptr);
    pools_.clear();
    uniforms_.clear();
    unused_ = memory_buffer();
    vkDestroyQueryPool(device_, queries_, nullptr);
    vkDestroyFence(device_, fence_, nullptr);
    vkDestroyCommandPool(device_, command_pool_, nullptr);
  }

  context* ctx_;
  VkDevice device_;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer command_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  VkQueryPool queries_ = VK_NULL_HANDLE;
  std::vector<descriptor_pool> pools_;
  std::size_t pool_index_ = 0;
  std::vector<memory_buffer> uniforms_;
  memory_buffer unused_;
  std::uint64_t uniform_used_ = 0;
  std::uint32_t dispatches_ = 0;
  std::uint32_t commands_ = 0;  // dispatches and copies, for the barriers between them
  std::uint32_t timestamps_ = 0;
  bool recording_ = false;
  std::vector<std::uint64_t> results_;
};

}  // namespace tessel::vk
