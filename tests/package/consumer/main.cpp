// A user's program: describe a parameter block, assert its layout, emit and
// compile a kernel against the installed tessel package.
#include <cstdint>
#include <cstdio>

#include <tessel/tessel.hpp>

struct ScaleParams {
  std::uint32_t count;
  float factor;
};
TESSEL_PARAMS(ScaleParams, count, factor);
static_assert(tessel::layout<ScaleParams>::size == 8);
static_assert(tessel::layout<ScaleParams>::matches_host);

struct scale_kernel {
  static constexpr auto name = tessel::name("consumer_scale");
  using params = ScaleParams;
  using bindings = tessel::bindings<tessel::inout<"data", float>>;
  using workgroup = tessel::workgroup<64>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i < params.count) data[i] *= params.factor;
}
)glsl";
};

int main() {
  const auto code =
      tessel::vk::compile_variant(tessel::info<scale_kernel>(), tessel::targets::portable);
  std::printf("consumer: %zu SPIR-V words\n", code.size());
  return code.empty() ? 1 : 0;
}
