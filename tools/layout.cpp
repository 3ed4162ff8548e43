// `tessel layout`: the GLSL layout of every parameter block as the host
// sees it, to compare with a shader's or another library's structs.
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "compiled_catalog.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/variant.hpp"

namespace tessel::cli {

namespace {

std::string count_text(std::size_t n) {
  return n == 0 ? "-" : std::to_string(n);
}

void print_json(const std::vector<block_info>& blocks) {
  std::cout << "[\n";
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const block_info& block = blocks[b];
    std::cout << "  {\"name\": " << json_string(block.name) << ", \"size\": " << block.size
              << ", \"alignment\": " << block.alignment
              << ", \"rule\": " << json_string(rule_name(block.rule)) << ",\n   \"fields\": [\n";
    for (std::size_t i = 0; i < block.fields.size(); ++i) {
      const field_layout& f = block.fields[i];
      std::cout << "     {\"name\": " << json_string(f.name)
                << ", \"glsl_type\": " << json_string(f.glsl_type) << ", \"offset\": " << f.offset
                << ", \"size\": " << f.size << ", \"array_count\": " << f.array_count
                << ", \"array_stride\": " << f.array_stride << "}"
                << (i + 1 < block.fields.size() ? ",\n" : "\n");
    }
    std::cout << "   ]}" << (b + 1 < blocks.size() ? ",\n" : "\n");
  }
  std::cout << "]\n";
}

void print_table(const std::vector<block_info>& blocks) {
  for (const block_info& block : blocks) {
    std::cout << block.name << ": " << block.size << " bytes, alignment " << block.alignment << ", "
              << rule_name(block.rule) << "\n";
    std::size_t name_width = 5, type_width = 4;
    for (const field_layout& f : block.fields) {
      name_width = std::max(name_width, f.name.size());
      type_width = std::max(type_width, f.glsl_type.size());
    }
    std::cout << "  " << std::left << std::setw(static_cast<int>(name_width)) << "field"
              << "  " << std::setw(static_cast<int>(type_width)) << "type" << std::right
              << "  offset  size  count  stride\n";
    for (const field_layout& f : block.fields)
      std::cout << "  " << std::left << std::setw(static_cast<int>(name_width)) << f.name << "  "
                << std::setw(static_cast<int>(type_width)) << f.glsl_type << std::right << "  "
                << std::setw(6) << f.offset << "  " << std::setw(4) << f.size << "  "
                << std::setw(5) << count_text(f.array_count) << "  " << std::setw(6)
                << count_text(f.array_stride) << "\n";
    std::cout << "\n";
  }
}

}  // namespace

int layout(const parsed& args) {
  const std::vector<block_info> blocks = tools::parameter_blocks();
  if (args.has("json"))
    print_json(blocks);
  else
    print_table(blocks);
  return 0;
}

}  // namespace tessel::cli
