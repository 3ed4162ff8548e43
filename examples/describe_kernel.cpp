// Describe and dispatch your own kernel: a parameter block with its layout
// asserted at compile time, a description, a host op that validates its
// arguments before recording anything, a dispatch on the default device
// (lavapipe when there is no GPU), and a check against a double-precision
// reference. Run it to see the GLSL tessel generates and the result.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include <tessel/tessel.hpp>

// 1. The parameter block: a plain struct plus its reflection. The asserts
// are the lock between host and GPU: a field whose offset differs from the
// GLSL block's (std430) stops the build, naming the block and the field.
struct SaxpyParams {
  std::uint32_t count;
  float alpha;
};
TESSEL_PARAMS(SaxpyParams, count, alpha);
static_assert(tessel::layout<SaxpyParams>::size == 8);
static_assert(tessel::layout<SaxpyParams>::matches_host);

// 2. The description: bindings, workgroup, body. Everything above main() in
// the GLSL is generated from these types: the #extension lines (f16 storage
// here), the workgroup size for the target (its subgroup width x 4), the
// parameter block and one buffer per binding.
struct saxpy {
  static constexpr auto name = tessel::name("saxpy");
  using params = SaxpyParams;
  using bindings = tessel::bindings<tessel::in<"x", tessel::f16>, tessel::inout<"y", float>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes, 4>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint local = gl_LocalInvocationID.x + gl_LocalInvocationID.y * gl_WorkGroupSize.x;
  const uint i = gl_WorkGroupID.x * gl_WorkGroupSize.x * gl_WorkGroupSize.y + local;
  if (i < params.count) y[i] += params.alpha * float(x[i]);
}
)glsl";
};

// 3. The host op: validate first (tessel::require names the argument and the
// rule), then record. Dispatching x as a buffer<float> would not compile:
// the element types are checked against the description.
void record_saxpy(tessel::vk::recorder& rec, const tessel::vk::buffer<tessel::f16>& x,
                  const tessel::vk::buffer<float>& y, float alpha) {
  constexpr std::string_view op = "saxpy";
  tessel::kernels::require_positive(op, "x element count", x.size());
  tessel::kernels::require_elements(op, "y", y.size(), x.size());
  tessel::kernels::require_32bit_indexable(op, "x", x.size());
  tessel::require(std::isfinite(alpha), op, "alpha", alpha, "must be finite");
  const tessel::extent3 size = tessel::info<saxpy>().workgroup(rec.target());
  const std::uint64_t per_group = std::uint64_t{size.x} * size.y;
  const auto groups = static_cast<std::uint32_t>((x.size() + per_group - 1) / per_group);
  rec.dispatch<saxpy>(SaxpyParams{static_cast<std::uint32_t>(x.size()), alpha}, {}, {groups, 1, 1},
                      x, y);
}

int main() {
  try {
    const tessel::variant_info& variant = tessel::info<saxpy>();
    std::printf("%s\n", variant.glsl(tessel::targets::portable).c_str());
    for (const tessel::target* t : tessel::targets::predefined) {
      const auto code = tessel::vk::compile_variant(variant, *t);
      std::printf("%s: %zu SPIR-V words, workgroup %u x %u\n", std::string(t->name).c_str(),
                  code.size(), variant.workgroup(*t).x, variant.workgroup(*t).y);
    }

    // 4. Run it: a ragged count (not a multiple of the workgroup).
    constexpr std::uint32_t count = 1000;
    constexpr float alpha = 0.5f;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<tessel::f16> x(count);
    std::vector<float> y(count);
    for (auto& v : x) v = tessel::to_f16(uniform(rng));
    for (auto& v : y) v = uniform(rng);

    tessel::vk::context ctx;
    tessel::vk::buffer<tessel::f16> x_gpu(ctx, count);
    tessel::vk::buffer<float> y_gpu(ctx, count);
    x_gpu.upload(x);
    y_gpu.upload(y);
    tessel::vk::recorder rec(ctx);
    record_saxpy(rec, x_gpu, y_gpu, alpha);
    rec.submit_and_wait();
    const std::vector<float> got = y_gpu.download();

    double worst = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
      const double want = double{y[i]} + double{alpha} * double{tessel::to_float(x[i])};
      worst = std::max(worst, std::abs(got[i] - want));
    }
    std::printf("%s: saxpy of %u elements, max error %.2e against the double reference\n",
                ctx.device().name.c_str(), count, worst);
    // One f32 multiply-add: at most half an ulp of |y| <= 1.5.
    if (!(worst <= 1.5 * 0x1p-24)) return 1;

    // 5. Bad input is refused before anything is recorded.
    tessel::vk::buffer<float> short_y(ctx, count - 1);
    try {
      record_saxpy(rec, x_gpu, short_y, alpha);
      std::printf("a short y was accepted\n");
      return 1;
    } catch (const tessel::error& e) {
      std::printf("refused: %s\n", e.what());
    }
    return ctx.validation_messages().empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "describe_kernel: %s\n", e.what());
    return 1;
  }
}
