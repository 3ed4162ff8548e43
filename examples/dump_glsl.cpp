// Dump and read the generated GLSL: the text tessel compiles for a variant
// depends only on its description and the target, so it can be written out,
// read, and compiled by glslc on any machine. This writes the TurboQuant
// encoder for head dim 128 for both predefined targets, prints what the
// description decided (workgroup, shared memory, where the parameter block
// went, the bindings) and the target constants at the top of each text, and
// compiles each. `tessel dump --target NAME --out DIR` does the
// same for every shipped variant.
//
//   dump_glsl [DIR]     (default: the current directory)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <tessel/kernels/tq_encode.hpp>
#include <tessel/vk/compiler.hpp>

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::filesystem::path dir = argc > 1 ? argv[1] : ".";
    std::filesystem::create_directories(dir);
    const tessel::variant_info& v = tessel::info<tessel::kernels::tq_encode<128>>();
    std::vector<std::vector<std::string>> texts;
    for (const tessel::target* t : tessel::targets::predefined) {
      const std::string glsl = v.glsl(*t);
      const std::filesystem::path file =
          dir / (std::string(v.name) + "." + std::string(t->name) + ".comp");
      std::ofstream(file) << glsl;
      const tessel::extent3 wg = v.workgroup(*t);
      const std::size_t words = tessel::vk::compile_variant(v, *t).size();
      std::printf(
          "%s: workgroup %u x %u x %u, %u bytes of shared memory, parameter block %s as %s, "
          "%zu SPIR-V words\n  -> %s\n",
          std::string(t->name).c_str(), wg.x, wg.y, wg.z, v.shared_bytes(*t),
          std::string(v.params->name).c_str(),
          std::string(tessel::placement_name(v.placement(*t))).c_str(), words,
          file.string().c_str());
      texts.push_back(lines_of(glsl));
    }
    std::printf("bindings:");
    for (const tessel::binding_info& b : v.bindings)
      std::printf(" %s (%s %s)", std::string(b.name).c_str(),
                  std::string(tessel::access_name(b.mode)).c_str(),
                  std::string(tessel::kind_name(b.element)).c_str());
    // Reading the text: the target's traits are constants at the top, and
    // the snippets adapt to them (the FWHT's cross-lane stages go through
    // shared memory where subgroups are narrower than 32 lanes).
    std::printf("\n");
    bool differ = false;
    for (std::size_t i = 0; i < texts.size(); ++i) {
      std::printf("%s, %zu lines:\n", std::string(tessel::targets::predefined[i]->name).c_str(),
                  texts[i].size());
      for (const std::string& line : texts[i])
        if (line.starts_with("const uint TARGET_") || line.starts_with("layout(local_size"))
          std::printf("  %s\n", line.c_str());
      differ = differ || texts[i] != texts[0];
    }
    // The targets differ in subgroup size at least, so the texts must too.
    return differ ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dump_glsl: %s\n", e.what());
    return 1;
  }
}
