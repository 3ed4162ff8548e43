// One context used from several threads: each thread has its own recorder
// (a recorder is one thread's at a time, recorder.hpp) and its own buffers,
// and they create pipelines, upload, record, submit and download at the same
// time. The context serializes what Vulkan requires serialized (queue
// submission, the transfer pool, the pipeline map); every result must still
// be the reference's and the validation layer must stay silent.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/reference/fwht.hpp"
#include "vk/fixture.hpp"

namespace tessel::test {
namespace {

class concurrency : public device_test {};

TEST_F(concurrency, threads_with_their_own_recorders_share_one_context) {
  using kernels::hadamard_mode;
  // Each thread starts with a head dim of its own, so four pipelines are
  // created at once, then moves on to the others' (already created or being
  // created) ones.
  constexpr std::uint32_t dims[] = {64, 128, 256, 512};
  constexpr int threads = 4, rounds = 4;
  std::vector<std::string> failures(threads);
  const std::uint64_t seed = test_seed();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      try {
        std::mt19937_64 rng(seed + static_cast<std::uint64_t>(t));
        vk::recorder rec(ctx());
        for (int round = 0; round < rounds; ++round) {
          const std::uint32_t dim = dims[(t + round) % 4];
          const std::uint32_t heads = 3 + static_cast<std::uint32_t>(t) + 5 * round;
          const auto mode = static_cast<hadamard_mode>((t + round) % 3);
          const std::vector<float> data = random_floats(rng, std::size_t{heads} * dim);
          vk::buffer<float> buffer(ctx(), data.size());
          buffer.upload(data);
          kernels::record_fwht(rec, buffer, heads, dim, mode);
          rec.submit_and_wait();
          const std::vector<float> got = buffer.download();
          const std::vector<double> want = reference::fwht(data, heads, dim, mode);
          for (std::size_t i = 0; i < got.size(); ++i)
            if (!(std::fabs(got[i] - want[i]) <= 1e-5 * (1 + std::fabs(want[i])))) {
              failures[t] = "round " + std::to_string(round) + " D=" + std::to_string(dim) +
                            " element " + std::to_string(i) + ": " + std::to_string(got[i]) +
                            " vs " + std::to_string(want[i]);
              return;
            }
        }
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  for (std::thread& w : workers) w.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
}

// Pipeline creation alone, many threads asking for the same and for
// different variants: each (variant, constants) is created exactly once.
TEST_F(concurrency, concurrent_pipeline_requests_create_each_pipeline_once) {
  vk::context fresh(vk::context_options{.validation = ctx().validation_enabled(),
                                        .pipeline_cache_dir = std::filesystem::path()});
  const variant_info* variants[] = {&info<kernels::decode_reduce<64>>(),
                                    &info<kernels::decode_reduce<128>>()};
  constexpr int threads = 6;
  std::vector<const vk::pipeline*> got(threads);
  std::vector<std::string> failures(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      try {
        const vk::spec_value nwg[] = {{0, 4}};
        got[t] = &fresh.pipeline(*variants[t % 2], nwg);
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  for (std::thread& w : workers) w.join();
  for (int t = 0; t < threads; ++t) {
    EXPECT_EQ(failures[t], "") << "thread " << t;
    EXPECT_EQ(got[t], got[t % 2]) << "thread " << t << " got a second pipeline";
  }
  EXPECT_EQ(fresh.pipelines().size(), 2u);
  expect_no_validation_messages(fresh);
}

}  // namespace
}  // namespace tessel::test
