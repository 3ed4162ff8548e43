// The prefill at a head dim tessel does not ship: the shipped variants are
// 64, 128, 256 and 512, but prefill<D, T> is a template over any multiple of
// 16 up to 512, so record_prefill_variant<96, bf16> instantiates D = 96 (its
// tiles, shared memory and GLSL follow from D at compile time; a D that does
// not fit every target's shared memory fails a static_assert). The result is
// checked against the double-precision reference.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <tessel/kernels/prefill.hpp>
#include <tessel/reference/prefill.hpp>

namespace kernels = tessel::kernels;
using tessel::bf16;

int main() {
  constexpr int head_dim = 96;
  try {
    // Two query heads per KV head (GQA), causal, the 37 queries being the
    // last of 53 positions (query_offset = 16): a prompt continued after a
    // cached prefix. Lengths that are not multiples of the tiles.
    kernels::prefill_problem p;
    p.batch = 2;
    p.num_heads = 4;
    p.num_kv_heads = 2;
    p.query_len = 37;
    p.key_len = 53;
    p.head_dim = head_dim;
    p.causal = true;
    p.query_offset = 16;
    const kernels::prefill_sizes n = kernels::prefill_sizes_of(p);

    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    auto random = [&](std::uint64_t count) {
      std::vector<bf16> out(count);
      for (bf16& x : out) x = tessel::to_bf16(uniform(rng));
      return out;
    };
    const std::vector<bf16> q = random(n.q), k = random(n.k), v = random(n.v);

    tessel::vk::context ctx;
    tessel::vk::buffer<bf16> q_gpu(ctx, n.q), k_gpu(ctx, n.k), v_gpu(ctx, n.v), o_gpu(ctx, n.o);
    q_gpu.upload(q);
    k_gpu.upload(k);
    v_gpu.upload(v);
    o_gpu.fill(bf16{0x7FC0});  // NaN: an element the kernel does not write shows up
    tessel::vk::recorder rec(ctx);
    kernels::record_prefill_variant<head_dim, bf16>(rec, p, q_gpu, k_gpu, v_gpu, o_gpu);
    rec.submit_and_wait();

    using tessel::reference::widen;
    const std::vector<double> want =
        tessel::reference::prefill(p, widen<bf16>(q), widen<bf16>(k), widen<bf16>(v));
    const std::vector<bf16> got = o_gpu.download();
    // The output is rounded once to bf16: half an ulp (2^-8) relative, plus
    // 1e-5 for the f32 arithmetic before it.
    double worst = 0;
    std::size_t outside = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double error = std::abs(double{tessel::to_float(got[i])} - want[i]);
      worst = std::max(worst, error);
      if (!(error <= 1e-5 + std::abs(want[i]) / 256)) ++outside;  // NaN counts as outside
    }
    const std::string variant(tessel::info<kernels::prefill<head_dim, bf16>>().name);
    std::printf("%s: %s, %zu outputs, max abs error %.2e, %zu out of tolerance\n",
                ctx.device().name.c_str(), variant.c_str(), want.size(), worst, outside);
    return outside == 0 && ctx.validation_messages().empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prefill_head_dim: %s\n", e.what());
    return 1;
  }
}
