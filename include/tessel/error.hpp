// tessel::error: the one exception type of the library. It names the
// operation, carries the VkResult when Vulkan produced it, and a message a
// user can act on ("decode_f16: kv_capacity = 7 must be >= kv_seq_len = 9").
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace tessel {

class error : public std::runtime_error {
 public:
  // `vk_result` is a VkResult value; 0 (VK_SUCCESS) when the failure is not
  // Vulkan's. Kept as an integer so this header needs no Vulkan headers.
  error(std::string_view operation, std::string_view message, std::int32_t vk_result = 0)
      : std::runtime_error(std::string(operation) + ": " + std::string(message)),
        operation_(operation),
        vk_result_(vk_result) {}

  const std::string& operation() const noexcept { return operation_; }
  std::int32_t vk_result() const noexcept { return vk_result_; }

 private:
  std::string operation_;
  std::int32_t vk_result_;
};

// Throws tessel::error(operation, "<argument> = <value> <rule>") unless `ok`.
// Shared by every host op's validation so messages read the same everywhere.
template <class Value>
void require(bool ok, std::string_view operation, std::string_view argument, const Value& value,
             std::string_view rule) {
  if (ok) return;
  std::string text(argument);
  text += " = ";
  if constexpr (std::is_convertible_v<Value, std::string_view>) {
    text += std::string_view(value);
  } else {
    text += std::to_string(value);
  }
  text += " ";
  text += rule;
  throw error(operation, text);
}

}  // namespace tessel
