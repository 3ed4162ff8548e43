// What every benchmark needs: GPU-timed repetitions with input sets rotated
// so the L2 cache does not flatter the result, the device's measured copy
// bandwidth (the floor of memory-bound kernels), robust statistics, and one
// JSON line per measurement.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "tessel/vk.hpp"

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

// GPU time of `record(rep)` over `reps` repetitions, each between two
// timestamps, `rep` selecting the input set. Untimed repetitions first keep
// the GPU busy for `warmup_ms`: GPUs lower their clocks when idle, and a
// latency-bound kernel measured right after a pause runs up to 3x slower.
inline timing time_gpu(vk::context& ctx, const std::function<void(vk::recorder&, int)>& record,
                       int reps, double warmup_ms = 200) {
  vk::recorder rec(ctx);
  for (double busy = 0, per_call = 0; busy < warmup_ms;) {
    const int calls =
        per_call > 0 ? std::clamp(static_cast<int>(warmup_ms / 4 / per_call), 1, 100) : 1;
    const std::uint32_t begin = rec.timestamp();
    for (int i = 0; i < calls; ++i) record(rec, i);
    const std::uint32_t end = rec.timestamp();
    rec.submit_and_wait();
    const double ms = rec.elapsed_ms(begin, end);
    busy += ms;
    per_call = ms / calls;
  }
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
// written (how bandwidth is usually quoted).
inline copy_rates measure_copy(vk::context& ctx, std::uint64_t bytes = 1ull << 30) {
  vk::buffer<std::uint32_t> src(ctx, bytes / 4), dst(ctx, bytes / 4);
  src.fill(1u);
  auto rate = [&](const timing& t) {
    return 2.0 * static_cast<double>(bytes) / (t.median_us * 1e3);
  };
  copy_rates rates;
  rates.transfer_gbs = rate(time_gpu(
      ctx, [&](vk::recorder& rec, int) { rec.copy(src.view(), dst.view()); }, 20));
  const std::uint32_t groups = std::max(1u, ctx.device().compute_units) * 16;
  rates.shader_gbs = rate(time_gpu(
      ctx,
      [&](vk::recorder& rec, int) {
        rec.dispatch<shader_copy>({}, {groups, 1, 1}, src, dst);
      },
      20));
  return rates;
}

// A JSON object written as one line, fields in insertion order.
class json_line {
 public:
  json_line& add(const std::string& key, const std::string& value) {
    return raw(key, "\"" + value + "\"");
  }
  json_line& add(const std::string& key, double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.6g", value);
    return raw(key, text);
  }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  json_line& raw(const std::string& key, const std::string& value) {
    body_ += (body_.empty() ? "\"" : ", \"") + key + "\": " + value;
    return *this;
  }
  std::string body_;
};

}  // namespace tessel::bench
