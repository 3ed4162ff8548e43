// Small kernel descriptions that exercise the Vulkan layer without any
// attention code: parameter blocks as push constants and as uniform buffers,
// specialization constants, and a shader that does not compile.
#pragma once

#include <cstdint>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"

namespace tessel::test {

// 12 bytes: a push constant on every device.
struct AxpbParams {
  float a;
  float b;
  std::uint32_t n;
};
TESSEL_PARAMS(AxpbParams, a, b, n);
static_assert(layout<AxpbParams>::size == 12 && layout<AxpbParams>::matches_host);

// y = factor * (a * x + b); `factor` is a specialization constant.
struct axpb {
  static constexpr auto name = tessel::name("test_axpb");
  using params = AxpbParams;
  using bindings = tessel::bindings<tessel::in<"x", float>, tessel::out<"y", float>>;
  using constants = tessel::constants<tessel::spec<"factor", std::uint32_t, 3, 1u>>;
  using workgroup = tessel::workgroup<64>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i < params.n) y[i] = float(factor) * (params.a * x[i] + params.b);
}
)glsl";
};

// 160 bytes: more than lavapipe's 128-byte push constants, so a uniform buffer there.
struct PolyParams {
  float coefficients[38];
  std::uint32_t n;
  float bias;
};
TESSEL_PARAMS(PolyParams, coefficients, n, bias);
static_assert(layout<PolyParams>::size == 160 && layout<PolyParams>::matches_host);

// y[i] = coefficients[i % 38] * x[i] + bias
struct poly {
  static constexpr auto name = tessel::name("test_poly");
  using params = PolyParams;
  using bindings = tessel::bindings<tessel::in<"x", float>, tessel::out<"y", float>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i < params.n) y[i] = params.coefficients[i % 38u] * x[i] + params.bias;
}
)glsl";
};

// No parameter block: dst[i] = float(src[i]) for an f16 source.
struct widen_f16 {
  static constexpr auto name = tessel::name("test_widen_f16");
  using bindings = tessel::bindings<tessel::in<"src", tessel::f16>, tessel::out<"dst", float>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i < src.length()) dst[i] = float(src[i]);
}
)glsl";
};

// An optional binding: y[i] = x[i] (+ bias[i] when has_bias). Without a bias
// the dispatch passes a null buffer pointer, bound to the recorder's unused
// binding.
struct maybe_biased {
  static constexpr auto name = tessel::name("test_maybe_biased");
  using bindings = tessel::bindings<tessel::in<"x", float>, tessel::in<"bias", tessel::f16>,
                                    tessel::out<"y", float>>;
  using constants = tessel::constants<tessel::spec<"has_bias", bool, 0>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint i = gl_GlobalInvocationID.x;
  if (i < x.length()) y[i] = x[i] + (has_bias ? float(bias[i]) : 0.0);
}
)glsl";
};

// GLSL that cannot compile.
struct broken {
  static constexpr auto name = tessel::name("test_broken_kernel");
  using bindings = tessel::bindings<tessel::out<"y", float>>;
  using workgroup = tessel::workgroup<1>;
  static constexpr std::string_view body = R"glsl(
void main() {
  y[0] = undeclared_variable;
}
)glsl";
};

// Needs NV cooperative matrices, which lavapipe does not have.
struct needs_coopmat {
  static constexpr auto name = tessel::name("test_needs_coopmat");
  using bindings = tessel::bindings<tessel::out<"y", float>>;
  using workgroup = tessel::workgroup<tessel::subgroup_lanes>;
  static constexpr tessel::extension extensions = tessel::extension::cooperative_matrix_nv;
  static constexpr std::string_view body = "void main() { y[0] = 1.0; }\n";
};

}  // namespace tessel::test
