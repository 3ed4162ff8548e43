// libFuzzer target: the validation of every typed host op with arbitrary
// 32-bit shape arguments and 64-bit buffer element counts, sizes no test
// could allocate. No device: it runs millions of inputs a minute. For every
// input the validation throws tessel::error, or it accepts and then, computed
// again here in 128 bits, every buffer the kernels index holds what the shape
// needs and fits their 32-bit indices, and every grid axis fits the 65535
// workgroups every device dispatches. Never another exception, a crash or a
// sanitizer report (UBSan: no wrapped signed arithmetic, no division by 0).
//
// One row of `ops` per op: draw its arguments, validate, check the sizes.
// A new op adds a row.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/kernels/tq_decode.hpp"
#include "tessel/kernels/tq_encode.hpp"

namespace {

using namespace tessel::kernels;
using tessel::max_grid_x;
using wide = unsigned __int128;

constexpr wide index_limit = std::numeric_limits<std::uint32_t>::max();

[[noreturn]] void fail(const char* op, const std::string& what) {
  std::fprintf(stderr, "tessel fuzz: %s accepted %s\n", op, what.c_str());
  std::abort();
}

// Draws 32-bit arguments: small, an edge, anything, or one drawn before
// plus -1, 0 or 1 (so relations like kv_capacity + 1 == n_tokens occur).
class argument_source {
 public:
  explicit argument_source(FuzzedDataProvider& data) : data_(data) {}
  std::uint32_t operator()() {
    std::uint32_t value = 0;
    switch (data_.ConsumeIntegralInRange(0, drawn_.empty() ? 2 : 3)) {
      case 0:
        value = data_.ConsumeIntegralInRange<std::uint32_t>(0, 1100);
        break;
      case 1:
        value = data_.PickValueInArray<std::uint32_t>(
            {0u,   1u,     2u,     3u,          4u,          5u,         6u,   7u,
             8u,   63u,    64u,    65u,         128u,        255u,       256u, 257u,
             512u, 65535u, 65536u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu});
        break;
      case 2:
        value = data_.ConsumeIntegral<std::uint32_t>();
        break;
      default:
        value = drawn_[data_.ConsumeIntegralInRange<std::size_t>(0, drawn_.size() - 1)] +
                data_.PickValueInArray<std::uint32_t>({0xFFFFFFFFu, 0u, 1u});
    }
    drawn_.push_back(value);
    return value;
  }

 private:
  FuzzedDataProvider& data_;
  std::vector<std::uint32_t> drawn_;
};

// A buffer's element count: usually the one the shape needs, else anything.
std::uint64_t elements(FuzzedDataProvider& data, wide needed) {
  if (data.ConsumeBool() && needed <= std::numeric_limits<std::uint64_t>::max())
    return static_cast<std::uint64_t>(needed) + data.ConsumeIntegralInRange<std::uint64_t>(0, 1);
  return data.ConsumeIntegral<std::uint64_t>();
}

float real(FuzzedDataProvider& data) {
  return data.PickValueInArray<float>({0.0f, 1.0f, 0.125f, 30.0f, 1e30f, -1.0f,
                                       std::numeric_limits<float>::infinity(),
                                       std::numeric_limits<float>::quiet_NaN()});
}

void expect(bool ok, const char* op, const std::string& what) {
  if (!ok) fail(op, what);
}

void fwht_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  const std::uint32_t heads = u32(), dim = u32(), mode = u32();
  const std::uint64_t given = elements(data, wide{heads} * dim);
  validate_fwht(heads, dim, static_cast<hadamard_mode>(mode), given);
  expect(wide{heads} * dim == given && given <= index_limit, "fwht", "a data size");
  expect(mode <= 2 && heads > 0, "fwht", "a mode or row count");
}

void decode_reduce_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  const std::uint32_t rows = u32(), dim = u32(), nwg = u32();
  const wide partials = wide{rows} * nwg * (wide{dim} + 2);
  const std::uint64_t given = elements(data, partials), dst = elements(data, wide{rows} * dim);
  validate_decode_reduce(rows, dim, nwg, given, dst);
  expect(partials <= index_limit && partials <= given, "decode_reduce", "a partials size");
  expect(wide{rows} * dim == dst, "decode_reduce", "a dst size");
  expect(nwg >= 1 && nwg <= max_decode_nwg, "decode_reduce", "an nwg");
}

void tq_encode_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  const tq_cache_format f{u32(), u32(), u32(), u32()};
  const tq_encode_args a{u32(), u32(), data.ConsumeBool(), data.ConsumeBool(), real(data)};
  const wide src = wide{f.num_kv_heads} * a.n_tokens * f.head_dim;
  const wide positions = wide{f.num_kv_heads} * f.kv_capacity;
  const std::uint64_t given_src = elements(data, src);
  const std::uint64_t words = elements(data, positions * tq_words_per_position(f.head_dim, f.bits));
  const std::uint64_t norms = elements(data, positions * tq_norms_per_position(f.head_dim));
  validate_tq_encode(f, a, given_src, words, norms);
  expect(src == given_src && src <= index_limit, "tq_encode", "a src size");
  expect(words == tq_code_words(f) && words <= index_limit, "tq_encode", "a codes size");
  expect(norms == tq_norm_count(f) && norms <= index_limit, "tq_encode", "a norms size");
  expect(a.ring ? wide{a.first_position} + a.n_tokens - 1 <= index_limit
                : wide{a.first_position} + a.n_tokens <= f.kv_capacity,
         "tq_encode", "positions outside the cache");
}

// The attention arguments every decode op shares, drawn.
void draw_decode_args(FuzzedDataProvider& data, argument_source& u32, decode_args& a) {
  a.batch = u32();
  a.num_heads = u32();
  a.num_kv_heads = u32();
  a.head_dim = u32();
  a.kv_seq_len = u32();
  a.kv_capacity = u32();
  a.scale = real(data);
  a.mask = static_cast<decode_mask>(u32());
  a.sliding_window = u32();
  a.ring_start = u32();
  a.softcap = real(data);
  a.nwg = u32();
  a.heads_per_group = u32();
}

// lavapipe's traits and an H100's: the split depends on them.
tessel::vk::device_traits draw_device(FuzzedDataProvider& data) {
  tessel::vk::device_traits device;
  device.subgroup_size = data.ConsumeBool() ? 8 : 32;
  device.compute_units = data.ConsumeBool() ? 0 : 132;
  return device;
}

// What an accepted decode plan must hold, whatever the cache's format.
void expect_decode_plan(const char* op, const decode_args& a, const decode_plan& plan) {
  const wide rows = wide{a.batch} * a.num_heads;
  expect(rows * a.head_dim <= index_limit, op, "a q size");
  expect(a.kv_seq_len >= 1 && a.kv_seq_len <= a.kv_capacity && a.ring_start < a.kv_capacity, op,
         "positions outside the cache");
  expect(plan.grid.x >= 1 && plan.grid.x <= max_decode_nwg && plan.grid.y >= 1 &&
             plan.grid.y <= max_grid_x && plan.grid.z >= 1 && plan.grid.z <= max_grid_x,
         op, "a grid");
  expect(plan.nwg == 1 ? plan.scratch_floats == 0
                       : plan.scratch_floats == rows * plan.nwg * (wide{a.head_dim} + 2) &&
                             plan.scratch_floats <= index_limit,
         op, "a scratch size");
  expect(plan.heads_per_group >= 1 && (a.num_heads / a.num_kv_heads) % plan.heads_per_group == 0,
         op, "a head grouping");
}

void decode_f16_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  decode_f16_args a;
  draw_decode_args(data, u32, a);
  const decode_plan plan = plan_decode_f16(draw_device(data), a);
  expect_decode_plan("decode_f16", a, plan);
  expect(wide{a.batch} * a.num_kv_heads * a.kv_capacity * a.head_dim <= index_limit, "decode_f16",
         "a cache size");
}

void tq_decode_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  const tq_decode_op which =
      data.PickValueInArray({tq_decode_op::nibble, tq_decode_op::byte, tq_decode_op::hybrid});
  tq_decode_args a;
  draw_decode_args(data, u32, a);
  a.bits = u32();
  a.values_f16 = data.ConsumeBool();
  a.scale_factor_d512 = real(data);
  a.nsg = u32();
  const decode_plan plan = plan_tq_decode(draw_device(data), which, a);
  const char* op = which == tq_decode_op::nibble ? "tq_decode"
                   : which == tq_decode_op::byte ? "tq_hb_decode"
                                                 : "tq_hybrid_decode";
  expect_decode_plan(op, a, plan);
  const tq_cache_format format = tq_decode_cache_format(a);
  const bool quantized = tq_quantized_keys(which) || tq_quantized_values(which, a);
  expect(!quantized || (wide{tq_code_words(format)} <= index_limit &&
                        wide{tq_norm_count(format)} <= index_limit),
         op, "a code or norm buffer past 32-bit indexing");
  expect(tq_quantized_keys(which) ||
             wide{a.batch} * a.num_kv_heads * a.kv_capacity * a.head_dim <= index_limit,
         op, "an f16 cache size");
  expect(
      wide{plan.heads_per_group} * tq_decode_tiling(plan.heads_per_group, a.nsg).position_splits <=
          16,
      op, "more than 16 subgroups");
}

void prefill_limits(FuzzedDataProvider& data) {
  argument_source u32(data);
  prefill_problem p;
  p.batch = u32();
  p.num_heads = u32();
  p.num_kv_heads = u32();
  p.query_len = u32();
  p.key_len = u32();
  p.head_dim = u32();
  p.kv_capacity = u32();
  p.layout = static_cast<attention_layout>(u32());
  if (data.ConsumeBool()) p.scale = real(data);
  p.causal = data.ConsumeBool();
  p.query_offset = u32();
  p.mask_rank = u32();
  const wide q = wide{p.batch} * p.num_heads * p.query_len * p.head_dim;
  const wide k = wide{p.batch} * p.num_kv_heads * p.capacity() * p.head_dim;
  const wide mask = p.mask_rank == 4 ? wide{p.batch} * p.num_heads * p.query_len * p.key_len
                                     : wide{p.query_len} * p.key_len;
  prefill_operands given{elements(data, q), elements(data, k), elements(data, k),
                         elements(data, q), std::nullopt,      std::nullopt};
  if (data.ConsumeBool()) given.mask = elements(data, mask);
  validate_prefill(p, given);
  expect(q <= index_limit && k <= index_limit && given.q == q && given.o == q && given.k == k &&
             given.v == k,
         "prefill", "an operand size");
  expect(!given.mask || (mask <= index_limit && *given.mask == mask), "prefill", "a mask size");
  const prefill_geometry g = prefill_geometry_for(p.head_dim);
  expect(p.batch <= max_grid_x && p.num_heads <= max_grid_x &&
             ceil_div(p.query_len, g.query_rows) <= max_grid_x,
         "prefill", "a grid");
  expect(wide{p.query_offset} + p.query_len <= 0x7FFFFFFF && p.capacity() <= 0x7FFFFFFF, "prefill",
         "positions past int32");
  // The tile classifier of the same problem.
  const std::uint64_t blk =
      data.ConsumeBool() ? prefill_sizes_of(p).blk : data.ConsumeIntegral<std::uint64_t>();
  try {
    validate_prefill_blk(p, given.mask.value_or(0), blk);
    expect(prefill_sizes_of(p).blk == blk && blk <= index_limit, "prefill_blk", "a blk size");
  } catch (const tessel::error&) {
  }
}

struct op_limits {
  const char* name;
  void (*check)(FuzzedDataProvider&);
};
constexpr op_limits ops[] = {
    {"fwht", fwht_limits},           {"decode_reduce", decode_reduce_limits},
    {"tq_encode", tq_encode_limits}, {"decode_f16", decode_f16_limits},
    {"tq_decode", tq_decode_limits}, {"prefill", prefill_limits}};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  const op_limits& op = data.PickValueInArray(ops);
  try {
    op.check(data);
  } catch (const tessel::error&) {
  }
  return 0;
}
