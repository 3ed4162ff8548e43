// Compute pipelines and their cache. A pipeline is created once per
// (variant name, specialization values) on one device, hence one target: the
// cache belongs to a context, whose target is fixed, so the target part of
// the key is implicit. The driver's VkPipelineCache behind it is persisted to
// disk so a second process skips the driver's shader compilation.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>
#include <vulkan/vulkan.h>

#include "tessel/dsl/emit.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"
#include "tessel/vk/compiler.hpp"
#include "tessel/vk/device.hpp"
#include "tessel/vk/result.hpp"
#include "tessel/vk/structure.hpp"

namespace tessel::vk {

// One specialization constant: its constant_id and its 32-bit value (a bool
// is a VkBool32, a float its bit pattern; see detail::spec_bits).
struct spec_value {
  std::uint32_t id = 0;
  std::uint32_t bits = 0;

  // The value of a float constant, by its bits.
  static constexpr spec_value of_float(std::uint32_t id, float value) {
    return {id, std::bit_cast<std::uint32_t>(value)};
  }
};

struct pipeline {
  std::string variant;
  std::vector<std::uint32_t> spec_bits;  // one per variant constant, in declaration order
  params_placement placement = params_placement::none;
  std::uint32_t params_bytes = 0;
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline handle = VK_NULL_HANDLE;
};

namespace detail {

// Every constant of `variant` with its default, overridden by `values`.
inline std::vector<std::uint32_t> resolve_spec(const variant_info& variant,
                                               std::span<const spec_value> values) {
  std::vector<std::uint32_t> bits;
  for (const spec_info& c : variant.constants) bits.push_back(c.default_bits);
  std::vector<bool> seen(bits.size(), false);
  for (const spec_value& v : values) {
    const auto it = std::find_if(variant.constants.begin(), variant.constants.end(),
                                 [&](const spec_info& c) { return c.id == v.id; });
    require(it != variant.constants.end(), variant.name, "specialization constant id", v.id,
            "is not declared by this variant");
    const auto i = static_cast<std::size_t>(it - variant.constants.begin());
    require(!seen[i], variant.name, "specialization constant id", v.id, "is given twice");
    seen[i] = true;
    bits[i] = v.bits;
  }
  return bits;
}

// Push-constant ranges and updates are in 4-byte units; std430 blocks whose
// members are all 16-bit may end on a 2-byte boundary.
constexpr std::uint32_t push_constant_range(std::size_t bytes) {
  return static_cast<std::uint32_t>((bytes + 3) / 4 * 4);
}

inline void destroy(VkDevice device, pipeline& p) {
  vkDestroyPipeline(device, p.handle, nullptr);
  vkDestroyPipelineLayout(device, p.layout, nullptr);
  vkDestroyDescriptorSetLayout(device, p.set_layout, nullptr);
}

inline std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

inline std::string hex(std::uint32_t value) {
  std::uint8_t bytes[4] = {static_cast<std::uint8_t>(value >> 24),
                           static_cast<std::uint8_t>(value >> 16),
                           static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value)};
  return hex(bytes);
}

// The file's bytes when its header says it was written by this very driver
// and device, else nothing: a stale, truncated or corrupt file is ignored.
inline std::vector<char> read_cache_file(const std::filesystem::path& file,
                                         const device_traits& device) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  VkPipelineCacheHeaderVersionOne header{};
  if (data.size() < sizeof header) return {};
  std::memcpy(&header, data.data(), sizeof header);
  const bool matches =
      header.headerSize >= sizeof header && header.headerSize <= data.size() &&
      header.headerVersion == VK_PIPELINE_CACHE_HEADER_VERSION_ONE &&
      header.vendorID == device.vendor_id && header.deviceID == device.device_id &&
      std::memcmp(header.pipelineCacheUUID, device.pipeline_cache_uuid.data(), VK_UUID_SIZE) == 0;
  return matches ? data : std::vector<char>{};
}

}  // namespace detail

// Thread safety: get() may be called from several threads; one mutex guards
// the map and is held while a missing pipeline is compiled, so two threads
// asking for the same key compile it once. References returned stay valid
// until the cache is destroyed.
class pipeline_cache {
 public:
  // `directory`: where the driver cache is loaded from and saved to;
  // nullopt or an empty path keeps it in memory only.
  pipeline_cache(VkDevice device, const device_traits& traits,
                 const std::optional<std::filesystem::path>& directory)
      : device_(device), traits_(traits), target_(traits.target()) {
    if (directory && !directory->empty())
      file_ = *directory / (detail::hex(traits.vendor_id) + "-" + detail::hex(traits.device_id) +
                            "-" + detail::hex(traits.pipeline_cache_uuid) + ".bin");
    const std::vector<char> data =
        file_ ? detail::read_cache_file(*file_, traits) : std::vector<char>{};
    auto info = structure<VkPipelineCacheCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO);
    info.initialDataSize = data.size();
    info.pInitialData = data.empty() ? nullptr : data.data();
    // A driver may still reject data whose header it accepted; start empty then.
    if (vkCreatePipelineCache(device_, &info, nullptr, &cache_) != VK_SUCCESS) {
      info.initialDataSize = 0;
      info.pInitialData = nullptr;
      check(vkCreatePipelineCache(device_, &info, nullptr, &cache_), "vkCreatePipelineCache");
    }
  }
  pipeline_cache(const pipeline_cache&) = delete;
  pipeline_cache& operator=(const pipeline_cache&) = delete;

  // Saves the driver cache (best effort: a cache that cannot be written
  // costs only compile time next run) and destroys every pipeline.
  ~pipeline_cache() {
    save();
    for (auto& [key, p] : pipelines_) detail::destroy(device_, *p);
    vkDestroyPipelineCache(device_, cache_, nullptr);
  }

  // The pipeline of `variant` with `spec` (unnamed constants keep their
  // defaults), created on first use. Throws tessel::error when the variant
  // does not fit the device, needs a feature it lacks, names an unknown
  // constant, or does not compile.
  const pipeline& get(const variant_info& variant, std::span<const spec_value> spec) {
    std::vector<std::uint32_t> bits = detail::resolve_spec(variant, spec);
    const std::lock_guard lock(mutex_);
    auto key = std::make_pair(std::string(variant.name), bits);
    if (const auto it = pipelines_.find(key); it != pipelines_.end()) return *it->second;
    auto created = create(variant, std::move(bits));
    return *pipelines_.emplace(std::move(key), std::move(created)).first->second;
  }

  std::size_t size() const {
    const std::lock_guard lock(mutex_);
    return pipelines_.size();
  }
  const std::optional<std::filesystem::path>& file() const { return file_; }
  VkPipelineCache handle() const { return cache_; }

 private:
  std::unique_ptr<pipeline> create(const variant_info& variant, std::vector<std::uint32_t> bits) {
    const extent3 wg = variant.workgroup(target_);
    require(variant.shared_bytes(target_) <= target_.shared_memory_bytes, variant.name,
            "shared memory bytes", variant.shared_bytes(target_),
            "must be <= the device's maxComputeSharedMemorySize " +
                std::to_string(target_.shared_memory_bytes));
    require(wg.count() <= target_.max_workgroup_invocations, variant.name, "workgroup invocations",
            wg.count(),
            "must be <= the device's maxComputeWorkGroupInvocations " +
                std::to_string(target_.max_workgroup_invocations));
    require_features(traits_, variant);
    if (variant.placement(target_) == params_placement::uniform_buffer)
      require(variant.params->size <= traits_.max_uniform_buffer_range, variant.name,
              "parameter block bytes", variant.params->size,
              "must be <= the device's maxUniformBufferRange " +
                  std::to_string(traits_.max_uniform_buffer_range));
    const spirv code = compile_variant(variant, target_);

    auto p = std::make_unique<pipeline>();
    p->variant = variant.name;
    p->spec_bits = std::move(bits);
    p->placement = variant.placement(target_);
    p->params_bytes = variant.params ? static_cast<std::uint32_t>(variant.params->size) : 0;
    VkShaderModule module = VK_NULL_HANDLE;
    try {
      std::vector<VkDescriptorSetLayoutBinding> bindings;
      for (std::uint32_t i = 0; i < variant.bindings.size(); ++i)
        bindings.push_back(
            {i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr});
      if (p->placement == params_placement::uniform_buffer)
        bindings.push_back({variant.params_binding(), VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, 1,
                            VK_SHADER_STAGE_COMPUTE_BIT, nullptr});
      auto set_info = structure<VkDescriptorSetLayoutCreateInfo>(
          VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO);
      set_info.bindingCount = static_cast<std::uint32_t>(bindings.size());
      set_info.pBindings = bindings.data();
      check(vkCreateDescriptorSetLayout(device_, &set_info, nullptr, &p->set_layout),
            "vkCreateDescriptorSetLayout " + p->variant);

      const VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0,
                                      detail::push_constant_range(p->params_bytes)};
      auto layout_info =
          structure<VkPipelineLayoutCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO);
      layout_info.setLayoutCount = 1;
      layout_info.pSetLayouts = &p->set_layout;
      if (p->placement == params_placement::push_constant) {
        layout_info.pushConstantRangeCount = 1;
        layout_info.pPushConstantRanges = &range;
      }
      check(vkCreatePipelineLayout(device_, &layout_info, nullptr, &p->layout),
            "vkCreatePipelineLayout " + p->variant);

      auto module_info =
          structure<VkShaderModuleCreateInfo>(VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO);
      module_info.codeSize = code.size() * sizeof(std::uint32_t);
      module_info.pCode = code.data();
      check(vkCreateShaderModule(device_, &module_info, nullptr, &module),
            "vkCreateShaderModule " + p->variant);

      std::vector<VkSpecializationMapEntry> entries;
      for (std::uint32_t i = 0; i < variant.constants.size(); ++i)
        entries.push_back({variant.constants[i].id,
                           static_cast<std::uint32_t>(i * sizeof(std::uint32_t)),
                           sizeof(std::uint32_t)});
      const VkSpecializationInfo specialization{
          static_cast<std::uint32_t>(entries.size()), entries.data(),
          p->spec_bits.size() * sizeof(std::uint32_t), p->spec_bits.data()};
      auto info =
          structure<VkComputePipelineCreateInfo>(VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO);
      info.stage = structure<VkPipelineShaderStageCreateInfo>(
          VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO);
      info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
      info.stage.module = module;
      info.stage.pName = "main";
      info.stage.pSpecializationInfo = entries.empty() ? nullptr : &specialization;
      info.layout = p->layout;
      check(vkCreateComputePipelines(device_, cache_, 1, &info, nullptr, &p->handle),
            "vkCreateComputePipelines " + p->variant);
    } catch (...) {
      vkDestroyShaderModule(device_, module, nullptr);
      detail::destroy(device_, *p);
      throw;
    }
    vkDestroyShaderModule(device_, module, nullptr);
    return p;
  }

  void save() const noexcept {
    if (!file_) return;
    try {
      std::size_t size = 0;
      if (vkGetPipelineCacheData(device_, cache_, &size, nullptr) != VK_SUCCESS || size == 0)
        return;
      std::vector<char> data(size);
      if (vkGetPipelineCacheData(device_, cache_, &size, data.data()) != VK_SUCCESS) return;
      std::error_code ignored;
      std::filesystem::create_directories(file_->parent_path(), ignored);
      // Writing beside the file and renaming keeps a concurrent reader from
      // ever seeing half a cache.
      std::filesystem::path temporary = *file_;
      temporary += ".tmp" + std::to_string(::getpid());
      {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(data.data(), static_cast<std::streamsize>(size));
        if (!out) {
          out.close();
          std::filesystem::remove(temporary, ignored);
          return;
        }
      }
      std::filesystem::rename(temporary, *file_, ignored);
      if (ignored) std::filesystem::remove(temporary, ignored);
    } catch (...) {
      // Out of host memory or a filesystem exception: skip saving, as above.
    }
  }

  VkDevice device_;
  const device_traits& traits_;
  tessel::target target_;
  std::optional<std::filesystem::path> file_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::vector<std::uint32_t>>, std::unique_ptr<pipeline>>
      pipelines_;
};

}  // namespace tessel::vk
