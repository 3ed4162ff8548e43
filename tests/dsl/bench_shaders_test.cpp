// The shaders that measure a device's floor (tessel/bench/timing.hpp) and
// the cooperative-matrix GEMM ceiling (tessel/bench/coopmat_gemm.hpp)
// compile and validate for every predefined target they fit, so the
// cooperative-matrix ones, which lavapipe cannot run, are compiled in CI too
// (with the NVIDIA target's 32-lane subgroups).
#include <gtest/gtest.h>

#include <string>

#include "tessel/bench/coopmat_gemm.hpp"
#include "tessel/bench/timing.hpp"
#include "tessel/vk/compiler.hpp"

namespace {

using namespace tessel;

TEST(BenchShaders, CompileOnEveryTargetTheyFit) {
  const variant_info* shaders[] = {&info<bench::shader_copy>(), &info<bench::fma_rate>(),
                                   &info<bench::coopmat_rate>(), &info<bench::coopmat_gemm<>>()};
  for (const target* t : targets::predefined)
    for (const variant_info* v : shaders) {
      SCOPED_TRACE(std::string(v->name) + " on " + std::string(t->name));
      if (v->fits(*t)) {
        EXPECT_NO_THROW(vk::compile_variant(*v, *t));
      }
    }
}

TEST(BenchShaders, CooperativeMatrixRateNeedsCooperativeMatrices) {
  const variant_info& v = info<bench::coopmat_rate>();
  EXPECT_TRUE(has(v.features(targets::nvidia), feature::cooperative_matrix_nv));
  EXPECT_FALSE(
      has(info<bench::fma_rate>().features(targets::portable), feature::cooperative_matrix_nv));
  // measure_matrix runs it only where the device has the 16x16x16 f16 shape.
  vk::device_traits device;
  EXPECT_FALSE(bench::has_coopmat_rate(device));
  device.features = feature::cooperative_matrix_nv;
  device.coopmat_shapes = {
      {16, 8, 16, scalar_kind::f16, scalar_kind::f16, scalar_kind::f32, scalar_kind::f32}};
  EXPECT_FALSE(bench::has_coopmat_rate(device));
  device.coopmat_shapes.push_back(
      {16, 16, 16, scalar_kind::f16, scalar_kind::f16, scalar_kind::f32, scalar_kind::f32});
  EXPECT_TRUE(bench::has_coopmat_rate(device));
}

// The GEMM needs the 16x16x16 shape, 32-lane subgroups and its slices'
// shared memory.
TEST(BenchShaders, CooperativeMatrixGemmNeedsItsDevice) {
  EXPECT_TRUE(
      has(info<bench::coopmat_gemm<>>().features(targets::nvidia), feature::cooperative_matrix_nv));
  vk::device_traits device;
  device.features = feature::cooperative_matrix_nv;
  device.coopmat_shapes = {
      {16, 16, 16, scalar_kind::f16, scalar_kind::f16, scalar_kind::f32, scalar_kind::f32}};
  device.subgroup_size = 32;
  device.shared_memory_bytes = bench::coopmat_gemm_shared_bytes(bench::coopmat_gemm_default_tiles);
  EXPECT_TRUE(bench::coopmat_gemm_supported(device));
  --device.shared_memory_bytes;
  EXPECT_FALSE(bench::coopmat_gemm_supported(device));
  device.shared_memory_bytes = 49152;
  device.subgroup_size = 64;
  EXPECT_FALSE(bench::coopmat_gemm_supported(device));
}

}  // namespace
