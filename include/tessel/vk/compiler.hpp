// GLSL -> SPIR-V in process (shaderc), and SPIR-V validation (SPIRV-Tools)
// with the rules of the target's features. Needs no Vulkan device, so CI
// compiles and validates every variant for every target, including the
// cooperative-matrix ones it cannot run.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <shaderc/shaderc.hpp>
#include <spirv-tools/libspirv.hpp>

#include "tessel/dsl/target.hpp"
#include "tessel/dsl/variant.hpp"
#include "tessel/error.hpp"

namespace tessel::vk {

using spirv = std::vector<std::uint32_t>;

namespace detail {

// The GLSL lines a compiler message points at ("name:LINE: error: ..."),
// with two lines of context, numbered as in the generated text.
inline std::string quote_offending_lines(std::string_view glsl, const std::string& messages) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0; start <= glsl.size();) {
    std::size_t end = glsl.find('\n', start);
    if (end == std::string_view::npos) end = glsl.size();
    lines.push_back(glsl.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  std::istringstream stream(messages);
  for (std::string message; std::getline(stream, message);) {
    const std::size_t first = message.find(':');
    if (first == std::string::npos) continue;
    const std::size_t second = message.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::size_t line = 0;
    try {
      line = std::stoul(message.substr(first + 1, second - first - 1));
    } catch (const std::exception&) {
      continue;
    }
    if (line == 0 || line > lines.size()) continue;
    out += "\n  at line " + std::to_string(line) + ":\n";
    for (std::size_t l = line > 2 ? line - 2 : 1; l <= std::min(lines.size(), line + 2); ++l)
      out += (l == line ? "  > " : "    ") + std::to_string(l) + " | " + std::string(lines[l - 1]) +
             "\n";
  }
  return out;
}

}  // namespace detail

// release: optimized for speed. debug: unoptimized with names and source
// lines kept (for reflection by name, RenderDoc, spirv-dis).
enum class build_mode : std::uint8_t { release, debug };

// Compiles one compute shader. Errors name the variant, quote shaderc's
// messages and the offending GLSL lines.
inline spirv compile_glsl(std::string_view variant_name, std::string_view glsl,
                          build_mode mode = build_mode::release) {
  shaderc::Compiler compiler;
  shaderc::CompileOptions options;
  options.SetTargetEnvironment(shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_3);
  // SPIR-V 1.6 makes glslang declare the workgroup size with LocalSizeId, which
  // needs the maintenance4 feature; 1.5 keeps LocalSize and runs everywhere.
  options.SetTargetSpirv(shaderc_spirv_version_1_5);
  if (mode == build_mode::release) {
    options.SetOptimizationLevel(shaderc_optimization_level_performance);
  } else {
    options.SetOptimizationLevel(shaderc_optimization_level_zero);
    options.SetGenerateDebugInfo();
  }
  const std::string name(variant_name);
  const auto result = compiler.CompileGlslToSpv(glsl.data(), glsl.size(), shaderc_compute_shader,
                                                name.c_str(), options);
  if (result.GetCompilationStatus() != shaderc_compilation_status_success) {
    const std::string messages = result.GetErrorMessage();
    throw error("compile " + name, "GLSL does not compile:\n" + messages +
                                       detail::quote_offending_lines(glsl, messages));
  }
  return spirv(result.cbegin(), result.cend());
}

// Validates SPIR-V as a Vulkan 1.3 module for a target; throws with the
// validator's message on failure.
inline void validate_spirv(std::string_view variant_name, const spirv& code, const target& t) {
  spvtools::SpirvTools tools(SPV_ENV_VULKAN_1_3);
  std::string messages;
  tools.SetMessageConsumer(
      [&](spv_message_level_t, const char*, const spv_position_t& position, const char* message) {
        messages += "word " + std::to_string(position.index) + ": " + message + "\n";
      });
  spvtools::ValidatorOptions options;
  if (has(t.features, feature::uniform_standard_layout))
    options.SetUniformBufferStandardLayout(true);
  if (has(t.features, feature::scalar_block_layout)) options.SetScalarBlockLayout(true);
  if (!tools.Validate(code.data(), code.size(), options))
    throw error("validate " + std::string(variant_name), "SPIR-V is not valid:\n" + messages);
}

// GLSL text of a variant for a target, compiled and validated.
inline spirv compile_variant(const variant_info& variant, const target& t,
                             build_mode mode = build_mode::release) {
  const std::string glsl = variant.glsl(t);
  spirv code = compile_glsl(variant.name, glsl, mode);
  validate_spirv(variant.name, code, t);
  return code;
}

}  // namespace tessel::vk
