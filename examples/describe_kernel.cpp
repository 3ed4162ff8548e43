// Describe your own kernel: a parameter block with its layout asserted at
// compile time, a description, and its generated GLSL compiled to SPIR-V for
// both predefined targets. Run it to see the text tessel writes.
#include <cstdint>
#include <cstdio>

#include <tessel/tessel.hpp>

// 1. The parameter block: a plain struct plus its reflection.
struct SaxpyParams {
  std::uint32_t count;
  float alpha;
};
TESSEL_PARAMS(SaxpyParams, count, alpha);
static_assert(tessel::layout<SaxpyParams>::size == 8);
static_assert(tessel::layout<SaxpyParams>::matches_host);

// 2. The description: bindings, workgroup, body. Everything above main() in
// the GLSL is generated from these types.
struct saxpy {
  static constexpr auto name = tessel::name("saxpy");
  using params = SaxpyParams;
  using bindings = tessel::bindings<tessel::in<"x", tessel::f16>, tessel::inout<"y", float>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes, 4>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
  if (i < params.count) y[i] += params.alpha * float(x[i]);
}
)glsl";
};

int main() {
  const tessel::variant_info& variant = tessel::info<saxpy>();
  std::printf("%s\n", variant.glsl(tessel::targets::portable).c_str());
  for (const tessel::target* t : tessel::targets::predefined) {
    const auto code = tessel::vk::compile_variant(variant, *t);
    std::printf("%s: %zu SPIR-V words, workgroup %u x %u\n", std::string(t->name).c_str(),
                code.size(), variant.workgroup(*t).x, variant.workgroup(*t).y);
  }
}
