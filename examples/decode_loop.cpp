// A decode loop: a prompt's K/V rows go into two caches, an f16 cache and a
// TurboQuant (4-bit) cache, then each step appends the new token's K/V rows
// to both and attends with the new query over each. Appending and attending
// are recorded in one submission per step: the recorder orders each command
// after the ones before it. The TurboQuant attention takes the raw query and
// returns a raw output (fuse_fwht_pre, unrotate_output); it is checked
// against the reference over the host encoder's caches, and its distance
// from the f16 attention is what 4-bit codes cost.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <tessel/kernels/decode_f16.hpp>
#include <tessel/kernels/tq_decode.hpp>
#include <tessel/kernels/tq_encode.hpp>
#include <tessel/reference/decode_f16.hpp>
#include <tessel/reference/tq_decode.hpp>
#include <tessel/reference/turboquant.hpp>

namespace kernels = tessel::kernels;
namespace vk = tessel::vk;
using tessel::f16;

namespace {

constexpr std::uint32_t heads = 4, kv_heads = 2, head_dim = 128, capacity = 48;
constexpr std::uint32_t prompt = 20, steps = 6, bits = 4;

// Copies rows [kv_heads, n, head_dim] into the cache [kv_heads, capacity,
// head_dim] at positions first .. first + n - 1: one copy per KV head.
void record_append_f16(vk::recorder& rec, const vk::buffer<f16>& rows, const vk::buffer<f16>& cache,
                       std::uint32_t first, std::uint32_t n) {
  const std::uint64_t row_bytes = head_dim * sizeof(f16);
  for (std::uint32_t h = 0; h < kv_heads; ++h) {
    vk::buffer_view src = rows.view(), dst = cache.view();
    src.offset = h * n * row_bytes;
    dst.offset = (std::uint64_t{h} * capacity + first) * row_bytes;
    src.bytes = dst.bytes = n * row_bytes;
    src.count = dst.count = std::uint64_t{n} * head_dim;
    rec.copy(src, dst);
  }
}

std::vector<f16> to_f16(const std::vector<float>& x) {
  std::vector<f16> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), [](float v) { return tessel::to_f16(v); });
  return out;
}

}  // namespace

int main() {
  try {
    vk::context ctx;
    const kernels::tq_cache_format format{kv_heads, capacity, head_dim, bits};
    vk::buffer<f16> keys(ctx, std::uint64_t{kv_heads} * capacity * head_dim);
    vk::buffer<f16> values(ctx, keys.size());
    vk::buffer<std::uint32_t> tq_key_codes(ctx, kernels::tq_code_words(format));
    vk::buffer<std::uint32_t> tq_value_codes(ctx, kernels::tq_code_words(format));
    vk::buffer<float> tq_key_norms(ctx, kernels::tq_norm_count(format));
    vk::buffer<float> tq_value_norms(ctx, kernels::tq_norm_count(format));
    vk::buffer<float> q(ctx, heads * head_dim), out(ctx, heads * head_dim),
        tq_out(ctx, heads * head_dim);
    // Partials for the split the plan chooses; the most any length needs.
    vk::buffer<float> scratch(
        ctx, kernels::decode_partials_size(heads, head_dim, kernels::max_decode_nwg));

    // The rows' quantizer inputs stay clear of the codebook's decision
    // boundaries, so the check at the end can demand the reference's exact
    // codes (with arbitrary rows an f32 encoder may round a tie either way).
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::vector<float> all_keys(std::uint64_t{kv_heads} * (prompt + steps) * head_dim);
    std::vector<float> all_values(all_keys.size());
    tessel::reference::tq_cache want_keys(format), want_values(format);

    vk::recorder rec(ctx);
    double worst = 0, tq_worst = 0, tq_cost = 0;
    for (std::uint32_t position = 0; position < prompt + steps;) {
      // The prompt arrives at once, then one token per step.
      const std::uint32_t n = position == 0 ? prompt : 1;
      const std::vector<float> k_rows = tessel::reference::tq_rows_clear_of_boundaries(
          rng, kv_heads * n, head_dim, bits, true, 0);
      const std::vector<float> v_rows = tessel::reference::tq_rows_clear_of_boundaries(
          rng, kv_heads * n, head_dim, bits, true, 0);
      for (std::uint32_t h = 0; h < kv_heads; ++h)
        for (std::uint32_t t = 0; t < n; ++t)
          for (std::uint32_t j = 0; j < head_dim; ++j) {
            const std::uint64_t at = (std::uint64_t{h} * n + t) * head_dim + j;
            const std::uint64_t cached =
                (std::uint64_t{h} * (prompt + steps) + position + t) * head_dim + j;
            all_keys[cached] = tessel::to_float(tessel::to_f16(k_rows[at]));
            all_values[cached] = tessel::to_float(tessel::to_f16(v_rows[at]));
          }

      // New rows in: f16 for the f16 cache, f32 for the encoder.
      vk::buffer<f16> k_new(ctx, k_rows.size()), v_new(ctx, v_rows.size());
      vk::buffer<float> k_src(ctx, k_rows.size()), v_src(ctx, v_rows.size());
      k_new.upload(to_f16(k_rows));
      v_new.upload(to_f16(v_rows));
      k_src.upload(k_rows);
      v_src.upload(v_rows);
      std::vector<float> query(heads * head_dim);
      for (float& x : query) x = uniform(rng);
      q.upload(query);

      kernels::tq_encode_args append;
      append.n_tokens = n;
      append.first_position = position;
      record_append_f16(rec, k_new, keys, position, n);
      record_append_f16(rec, v_new, values, position, n);
      kernels::record_tq_encode(rec, k_src, tq_key_codes, tq_key_norms, format, append);
      kernels::record_tq_encode(rec, v_src, tq_value_codes, tq_value_norms, format, append);
      tessel::reference::tq_encode(want_keys, k_rows, append);
      tessel::reference::tq_encode(want_values, v_rows, append);
      position += n;

      kernels::decode_f16_args a;
      a.num_heads = heads;
      a.num_kv_heads = kv_heads;
      a.head_dim = head_dim;
      a.kv_seq_len = position;
      a.kv_capacity = capacity;
      kernels::record_decode_f16(rec, q, keys, values, out, &scratch, a);
      kernels::tq_decode_args tq;
      static_cast<kernels::decode_args&>(tq) = a;
      tq.bits = bits;
      tq.fuse_fwht_pre = tq.unrotate_output = true;
      kernels::record_tq_decode(rec, q, {&tq_key_codes, &tq_key_norms},
                                {&tq_value_codes, &tq_value_norms}, tq_out, &scratch, tq);
      rec.submit_and_wait();

      // The f16 attention against the double reference over the same rows.
      std::vector<f16> host_keys(keys.size(), f16{0}), host_values(keys.size(), f16{0});
      for (std::uint32_t h = 0; h < kv_heads; ++h)
        for (std::uint32_t t = 0; t < position; ++t)
          for (std::uint32_t j = 0; j < head_dim; ++j) {
            const std::uint64_t cached = (std::uint64_t{h} * (prompt + steps) + t) * head_dim + j;
            const std::uint64_t slot = (std::uint64_t{h} * capacity + t) * head_dim + j;
            host_keys[slot] = tessel::to_f16(all_keys[cached]);
            host_values[slot] = tessel::to_f16(all_values[cached]);
          }
      const std::vector<double> want =
          tessel::reference::decode_f16(query, host_keys, host_values, a);
      const std::vector<float> got = out.download();
      double step_error = 0;
      for (std::size_t i = 0; i < want.size(); ++i)
        step_error =
            std::max(step_error, std::abs(got[i] - want[i]) / (2e-6 + 2e-5 * std::abs(want[i])));
      worst = std::max(worst, step_error);

      // The TurboQuant attention against the reference over the host
      // encoder's caches (the same codes), and against the f16 attention.
      // The tolerance: f32 arithmetic plus what the kernel's f16 staging of
      // decoded rows can add (reference::tq_f16_staging_bound).
      const std::vector<double> deq_keys = tessel::reference::tq_dequantize_cache(want_keys, 0);
      const std::vector<double> deq_values = tessel::reference::tq_dequantize_cache(want_values, 0);
      const std::vector<double> tq_want = tessel::reference::tq_decode(
          kernels::tq_decode_op::nibble, query, deq_keys, deq_values, tq);
      const std::vector<double> staging = tessel::reference::tq_f16_staging_bound(
          kernels::tq_decode_op::nibble, query, deq_keys, deq_values, tq);
      const std::vector<float> tq_got = tq_out.download();
      double tq_step = 0, cost = 0, norm = 0;
      for (std::size_t i = 0; i < tq_want.size(); ++i) {
        tq_step = std::max(tq_step, std::abs(tq_got[i] - tq_want[i]) /
                                        (1e-5 + 2e-5 * std::abs(tq_want[i]) + staging[i]));
        cost += (tq_got[i] - want[i]) * (tq_got[i] - want[i]);
        norm += want[i] * want[i];
      }
      tq_worst = std::max(tq_worst, tq_step);
      tq_cost = std::max(tq_cost, std::sqrt(cost / norm));
      std::printf(
          "position %2u: attended %2u tokens, error / tolerance %.3f (f16) %.3f (4-bit), "
          "4-bit vs f16 NRMSE %.3f\n",
          position - 1, position, step_error, tq_step, std::sqrt(cost / norm));
    }

    // The TurboQuant caches against the host encoder: codes bit for bit,
    // norms to f32 accuracy.
    const std::vector<std::uint32_t> key_codes = tq_key_codes.download();
    const std::vector<std::uint32_t> value_codes = tq_value_codes.download();
    const std::vector<float> key_norms = tq_key_norms.download();
    const std::vector<float> value_norms = tq_value_norms.download();
    std::size_t code_mismatches = 0, norm_mismatches = 0;
    for (std::uint32_t h = 0; h < kv_heads; ++h)
      for (std::uint32_t t = 0; t < prompt + steps; ++t) {
        const std::uint64_t words = kernels::tq_words_per_position(head_dim, bits);
        for (std::uint64_t w = 0; w < words; ++w) {
          const std::uint64_t at = (std::uint64_t{h} * capacity + t) * words + w;
          code_mismatches += key_codes[at] != want_keys.codes[at];
          code_mismatches += value_codes[at] != want_values.codes[at];
        }
        const std::uint64_t at = std::uint64_t{h} * capacity + t;
        norm_mismatches +=
            !(std::abs(key_norms[at] - want_keys.norms[at]) <= 2e-6 * want_keys.norms[at]);
        norm_mismatches +=
            !(std::abs(value_norms[at] - want_values.norms[at]) <= 2e-6 * want_values.norms[at]);
      }
    std::printf(
        "TurboQuant caches: %zu code words and %zu norms differ from the reference; "
        "4-bit attention at most %.3f from f16 (NRMSE)\n",
        code_mismatches, norm_mismatches, tq_cost);
    const bool ok = worst <= 1 && tq_worst <= 1 && code_mismatches == 0 && norm_mismatches == 0 &&
                    ctx.validation_messages().empty();
    std::printf("%s: %s\n", ctx.device().name.c_str(), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "decode_loop: %s\n", e.what());
    return 1;
  }
}
