// What every benchmark needs: GPU-timed repetitions with input sets rotated
// so the L2 cache does not flatter the result, robust statistics, and the
// device's measured rates that make a floor: the copy bandwidth (the floor of
// memory-bound kernels) and the matrix rate (the floor of matrix work).
// Used by `tessel bench` and the programs in bench/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::bench {

struct timing {
  double median_us = 0, p10_us = 0, p90_us = 0;
  std::size_t samples = 0;
};

inline timing summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<std::size_t>(q * (us.size() - 1) + 0.5)]; };
  return {at(0.5), at(0.1), at(0.9), us.size()};
}

// How many timed repetitions, and how long to warm up first. With
// min_reps < max_reps the count adapts: as many as fit `budget_ms` of GPU
// time, so that slow shapes do not take minutes and fast ones get enough
// samples for a stable median.
struct repetitions {
  int min_reps = 10;
  int max_reps = 100;
  double budget_ms = 2000;
  double warmup_ms = 200;
};

// GPU time of `record(rep)`, each repetition between two timestamps, `rep`
// selecting the input set. Untimed repetitions first keep the GPU busy for
// `warmup_ms` (at least one call): GPUs lower their clocks when idle, and a
// latency-bound kernel measured right after a pause runs up to 3x slower.
inline timing time_gpu(vk::context& ctx, const std::function<void(vk::recorder&, int)>& record,
                       const repetitions& how) {
  vk::recorder rec(ctx);
  double per_call = 0;
  for (double busy = 0; busy < how.warmup_ms || per_call == 0;) {
    const int calls =
        per_call > 0 ? std::clamp(static_cast<int>(how.warmup_ms / 4 / per_call), 1, 100) : 1;
    const std::uint32_t begin = rec.timestamp();
    for (int i = 0; i < calls; ++i) record(rec, i);
    const std::uint32_t end = rec.timestamp();
    rec.submit_and_wait();
    const double ms = rec.elapsed_ms(begin, end);
    busy += ms;
    per_call = std::max(ms / calls, 1e-6);
  }
  const int reps = std::clamp(static_cast<int>(how.budget_ms / per_call), how.min_reps,
                              std::max(how.min_reps, how.max_reps));
  std::vector<double> us;
  const int per_submission = static_cast<int>(vk::recorder::max_timestamps / 2);
  for (int done = 0; done < reps;) {
    const int batch = std::min(per_submission, reps - done);
    std::vector<std::uint32_t> marks;
    for (int i = 0; i < batch; ++i) {
      marks.push_back(rec.timestamp());
      record(rec, done + i);
      marks.push_back(rec.timestamp());
    }
    rec.submit_and_wait();
    for (int i = 0; i < batch; ++i)
      us.push_back(1e3 * rec.elapsed_ms(marks[2 * i], marks[2 * i + 1]));
    done += batch;
  }
  return summarize(std::move(us));
}

// Exactly `reps` timed repetitions.
inline timing time_gpu(vk::context& ctx, const std::function<void(vk::recorder&, int)>& record,
                       int reps, double warmup_ms = 200) {
  return time_gpu(ctx, record, repetitions{reps, reps, 0, warmup_ms});
}

// Input sets needed so that consecutive repetitions never find their data in
// a cache of `cache_bytes` (the H100's L2 holds 50 MB): the sets together
// span three times the cache.
inline int rotation_sets(std::uint64_t set_bytes, std::uint64_t cache_bytes = 50ull << 20) {
  const std::uint64_t sets = (3 * cache_bytes + set_bytes - 1) / set_bytes;
  return static_cast<int>(std::clamp<std::uint64_t>(sets, 2, 64));
}

// A compute-shader copy with 16-byte loads and stores: the bandwidth a
// memory-bound kernel can reach (a transfer-queue copy may use other paths).
struct shader_copy {
  static constexpr std::string_view name = "bench_shader_copy";
  using bindings = tessel::bindings<in<"src", std::uint32_t, vec<std::uint32_t, 4>>,
                                    out<"dst", std::uint32_t, vec<std::uint32_t, 4>>>;
  using workgroup = tessel::workgroup<256>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint chunks = uint(src.length()) / 4u;
  const uint stride = gl_NumWorkGroups.x * 256u;
  for (uint i = gl_GlobalInvocationID.x; i < chunks; i += stride) dst_wide[i] = src_wide[i];
}
)glsl";
};

struct copy_rates {
  double transfer_gbs = 0;  // vkCmdCopyBuffer on the compute queue
  double shader_gbs = 0;    // shader_copy
  double best() const { return std::max(transfer_gbs, shader_gbs); }
};

// Device-to-device copy rates in GB/s, counting bytes read plus bytes
// written (how bandwidth is usually quoted). `bytes` is capped at the
// largest buffer a shader may bind on the device.
inline copy_rates measure_copy(vk::context& ctx, std::uint64_t bytes = 1ull << 30, int reps = 20) {
  bytes = std::min(bytes, ctx.device().max_storage_buffer_range) / 16 * 16;
  vk::buffer<std::uint32_t> src(ctx, bytes / 4), dst(ctx, bytes / 4);
  src.fill(1u);
  auto rate = [&](const timing& t) {
    return 2.0 * static_cast<double>(bytes) / (t.median_us * 1e3);
  };
  copy_rates rates;
  rates.transfer_gbs = rate(time_gpu(
      ctx, [&](vk::recorder& rec, int) { rec.copy(src.view(), dst.view()); }, reps));
  const std::uint32_t groups = std::max(1u, ctx.device().compute_units) * 16;
  rates.shader_gbs = rate(time_gpu(
      ctx,
      [&](vk::recorder& rec, int) {
        rec.dispatch<shader_copy>({}, {groups, 1, 1}, src, dst);
      },
      reps));
  return rates;
}

// --- matrix rates ------------------------------------------------------------

struct RateParams {
  std::uint32_t iterations;
};
TESSEL_PARAMS(RateParams, iterations);
static_assert(layout<RateParams>::matches_host);

// Independent f32 multiply-adds in registers: the rate of matrix work done
// with plain FMAs (what portable kernels such as prefill run on). Eight
// vec4 chains per invocation hide the FMA latency; the sum is stored so
// the chains are not removed.
struct fma_rate {
  static constexpr std::string_view name = "bench_fma_rate";
  static constexpr std::uint32_t chains = 8, flops_per_iteration = chains * 4 * 2;
  using params = RateParams;
  using bindings = tessel::bindings<out<"dst", float>>;
  using workgroup = tessel::workgroup<256>;
  static constexpr std::string_view body = R"glsl(
void main() {
  vec4 acc[8];
  for (uint c = 0u; c < 8u; ++c) acc[c] = vec4(float(gl_GlobalInvocationID.x + c) * 1e-7);
  const vec4 a = vec4(0.999999), b = vec4(1e-7);
  for (uint i = 0u; i < params.iterations; ++i)
    for (uint c = 0u; c < 8u; ++c) acc[c] = fma(acc[c], a, b);
  vec4 sum = vec4(0.0);
  for (uint c = 0u; c < 8u; ++c) sum += acc[c];
  dst[gl_GlobalInvocationID.x] = sum.x + sum.y + sum.z + sum.w;
}
)glsl";
};

// f16 x f16 -> f32 products of 16x16 tiles on cooperative matrices (NV):
// the tensor-core rate, on devices that have the 16x16x16 shape. Four
// independent accumulators per subgroup (the scope literal 3 is
// gl_ScopeSubgroup).
struct coopmat_rate {
  static constexpr std::string_view name = "bench_coopmat_rate";
  static constexpr std::uint32_t tile = 16, accumulators = 4, subgroups = 4;
  static constexpr std::uint32_t flops_per_iteration = accumulators * 2 * tile * tile * tile;
  using params = RateParams;
  using bindings = tessel::bindings<out<"dst", float>>;
  using workgroup = tessel::workgroup<subgroup_lanes, subgroups>;
  static constexpr extension extensions =
      extension::cooperative_matrix_nv | extension::explicit_float16;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint subgroup = gl_WorkGroupID.x * gl_WorkGroupSize.y + gl_LocalInvocationID.y;
  fcoopmatNV<16, 3, 16, 16> a = fcoopmatNV<16, 3, 16, 16>(float16_t(1e-3));
  fcoopmatNV<16, 3, 16, 16> b = fcoopmatNV<16, 3, 16, 16>(float16_t(1e-3));
  fcoopmatNV<32, 3, 16, 16> c0 = fcoopmatNV<32, 3, 16, 16>(float(subgroup));
  fcoopmatNV<32, 3, 16, 16> c1 = c0, c2 = c0, c3 = c0;
  for (uint i = 0u; i < params.iterations; ++i) {
    c0 = coopMatMulAddNV(a, b, c0);
    c1 = coopMatMulAddNV(a, b, c1);
    c2 = coopMatMulAddNV(a, b, c2);
    c3 = coopMatMulAddNV(a, b, c3);
  }
  // Stored one by one: the optimizer of SPIRV-Tools 2022.4 (Debian 12)
  // crashes folding a sum of cooperative matrices.
  coopMatStoreNV(c0, dst, subgroup * 1024u, 16u, false);
  coopMatStoreNV(c1, dst, subgroup * 1024u + 256u, 16u, false);
  coopMatStoreNV(c2, dst, subgroup * 1024u + 512u, 16u, false);
  coopMatStoreNV(c3, dst, subgroup * 1024u + 768u, 16u, false);
}
)glsl";
};

// Whether the device runs coopmat_rate: NV cooperative matrices with the
// 16x16x16 f16 x f16 -> f32 shape.
inline bool has_coopmat_rate(const vk::device_traits& device) {
  if (!has(device.features, feature::cooperative_matrix_nv)) return false;
  return std::any_of(device.coopmat_shapes.begin(), device.coopmat_shapes.end(), [](const auto& s) {
    return s.m == 16 && s.n == 16 && s.k == 16 && s.a == scalar_kind::f16 &&
           s.b == scalar_kind::f16 && s.c == scalar_kind::f32 && s.result == scalar_kind::f32;
  });
}

struct matrix_rates {
  double fma_tflops = 0;      // fma_rate: f32 FMAs
  double coopmat_tflops = 0;  // coopmat_rate; 0 where the device has none
  double best() const { return std::max(fma_tflops, coopmat_tflops); }
};

// Rates in TFLOP/s (a multiply-add counts two). `iterations` per call makes
// one call long enough to time; the grid fills the device several times.
inline matrix_rates measure_matrix(vk::context& ctx, std::uint32_t iterations = 4096,
                                   int reps = 10) {
  const std::uint32_t units = std::max(1u, ctx.device().compute_units);
  matrix_rates rates;
  {
    const std::uint32_t groups = units * 16;
    vk::buffer<float> dst(ctx, std::uint64_t{groups} * 256);
    const timing t = time_gpu(
        ctx,
        [&](vk::recorder& rec, int) {
          rec.dispatch<fma_rate>(RateParams{iterations}, {}, {groups, 1, 1}, dst);
        },
        reps, 50);
    rates.fma_tflops =
        double(groups) * 256 * iterations * fma_rate::flops_per_iteration / (t.median_us * 1e6);
  }
  if (has_coopmat_rate(ctx.device())) {
    const std::uint32_t groups = units * 8;
    vk::buffer<float> dst(
        ctx, std::uint64_t{groups} * coopmat_rate::subgroups * coopmat_rate::accumulators * 256);
    const timing t = time_gpu(
        ctx,
        [&](vk::recorder& rec, int) {
          rec.dispatch<coopmat_rate>(RateParams{iterations}, {}, {groups, 1, 1}, dst);
        },
        reps, 50);
    rates.coopmat_tflops = double(groups) * coopmat_rate::subgroups * iterations *
                           coopmat_rate::flops_per_iteration / (t.median_us * 1e6);
  }
  return rates;
}

}  // namespace tessel::bench
