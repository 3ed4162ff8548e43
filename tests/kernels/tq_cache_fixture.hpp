// TurboQuant caches on the device for tests: poisoned at creation, written
// by the encoder, read back as host caches of the reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tessel/kernels/tq_encode.hpp"
#include "tessel/reference/turboquant.hpp"
#include "tessel/vk/buffer.hpp"
#include "tessel/vk/context.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::test {

inline constexpr std::uint32_t poison_word = 0xA5A5A5A5u;

// A device cache: codes poisoned with poison_word and norms with NaN at
// creation, written by one or more encode calls.
class device_cache {
 public:
  device_cache(vk::context& ctx, const kernels::tq_cache_format& f)
      : format_(f),
        codes_(ctx, kernels::tq_code_words(f)),
        norms_(ctx, kernels::tq_norm_count(f)),
        ctx_(&ctx) {
    codes_.fill(poison_word);
    norms_.fill(std::nanf(""));
  }

  void encode(const std::vector<float>& src, const kernels::tq_encode_args& args) {
    vk::buffer<float> input(*ctx_, src.size());
    input.upload(src);
    vk::recorder rec(*ctx_);
    kernels::record_tq_encode(rec, input, codes_, norms_, format_, args);
    rec.submit_and_wait();
  }

  const kernels::tq_cache_format& format() const { return format_; }
  const vk::buffer<std::uint32_t>& code_buffer() const { return codes_; }
  const vk::buffer<float>& norm_buffer() const { return norms_; }
  std::vector<std::uint32_t> codes() const { return codes_.download(); }
  std::vector<float> norms() const { return norms_.download(); }

  // The contents as a host cache (norms widened to double).
  reference::tq_cache download() const {
    reference::tq_cache out(format_);
    out.codes = codes();
    const std::vector<float> n = norms();
    out.norms.assign(n.begin(), n.end());
    return out;
  }

 private:
  kernels::tq_cache_format format_;
  vk::buffer<std::uint32_t> codes_;
  vk::buffer<float> norms_;
  vk::context* ctx_;
};

// A reference cache poisoned like a device one.
inline reference::tq_cache poisoned_reference(const kernels::tq_cache_format& f) {
  reference::tq_cache out(f);
  std::fill(out.codes.begin(), out.codes.end(), poison_word);
  std::fill(out.norms.begin(), out.norms.end(), std::nan(""));
  return out;
}

}  // namespace tessel::test
