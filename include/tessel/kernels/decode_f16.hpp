// Single-query decode attention over an f16 KV cache (KERNELS.md sections 7
// and 11.2), on the decode engine (decode_attention.hpp: the math, masks,
// rings and work split). This header supplies the f16 cache: K and V f16
// [batch, num_kv_heads, kv_capacity, head_dim], staged a tile at a time into
// shared memory with 16-byte loads.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/kernels/decode_attention.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// VecF16Params, 36 bytes (the seed's peer-port block).
struct VecF16Params {
  std::uint32_t num_heads;
  std::uint32_t num_kv_heads;
  std::uint32_t head_dim;
  std::uint32_t kv_seq_len;   // valid positions, > 0
  std::uint32_t kv_capacity;  // allocated positions per KV head (its stride), >= kv_seq_len
  float scale;
  std::uint32_t mask_type;       // decode_mask
  std::uint32_t sliding_window;  // window length for decode_mask::sliding_window
  std::uint32_t ring_start;      // slot of logical position 0 (the oldest entry)
};
TESSEL_PARAMS(VecF16Params, num_heads, num_kv_heads, head_dim, kv_seq_len, kv_capacity, scale,
              mask_type, sliding_window, ring_start);
static_assert(layout<VecF16Params>::size == 36);
static_assert(layout<VecF16Params>::matches_host);

using decode_f16_args = decode_args;

// The reader of rows of D halves staged in the shared array `shared_tile`
// (ROW_CHUNKS uvec4 per row): void <cache>_tile_chunk(uint row, uint chunk,
// out vec4 low, out vec4 high), the floats 8 chunk .. 8 chunk + 7.
inline std::string f16_tile_chunk_glsl(std::string_view cache_name, std::string_view shared_tile) {
  std::string text = R"glsl(
void CACHE_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high) {
  const uvec4 packed = SHARED_TILE[row * ROW_CHUNKS + chunk];
  low = vec4(unpackHalf2x16(packed.x), unpackHalf2x16(packed.y));
  high = vec4(unpackHalf2x16(packed.z), unpackHalf2x16(packed.w));
}
)glsl";
  return replace_all(replace_all(std::move(text), "SHARED_TILE", shared_tile), "CACHE", cache_name);
}

// The tile of an f16 cache for the decode engine (decode_attention.hpp):
// rows of D halves read from the buffer `<buffer>` (with a uvec4 wide view)
// with 16-byte loads. For cache "key" (and likewise "value"):
//   void load_key_tile(uint cache_head, uint first, uint count)
//   void store_key_tile()
//   void key_tile_chunk(uint row, uint chunk, out vec4 low, out vec4 high)
// Rows past `count` repeat the last row: they stay finite and inside the
// attended range. The rows are staged in the shared array `<cache>_tile`,
// or in `shared_tile` (TILE * ROW_CHUNKS uvec4 or more) when the includer
// declares one to share it with another loader.
inline std::string f16_tile_glsl(std::string_view cache_name, std::string_view buffer_name,
                                 std::string_view shared_tile = {}) {
  std::string text =
      shared_tile.empty() ? "\nshared uvec4 CACHE_tile[TILE * ROW_CHUNKS];" : std::string();
  text += R"glsl(
const uint CACHE_tile_LOADS = (TILE * ROW_CHUNKS + THREADS - 1u) / THREADS;

// This invocation's share of the next tile, in flight while the staged one
// is used.
uvec4 CACHE_tile_in[CACHE_tile_LOADS];

void load_CACHE_tile(uint cache_head, uint first, uint count) {
  const uint base = cache_head * params.kv_capacity;
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = min(gl_LocalInvocationIndex + i * THREADS, TILE * ROW_CHUNKS - 1u);
    const uint row = min(at / ROW_CHUNKS, count - 1u);
    CACHE_tile_in[i] = BUFFER_wide[(base + cache_slot(first + row)) * ROW_CHUNKS + at % ROW_CHUNKS];
  }
}

void store_CACHE_tile() {
  UNROLL for (uint i = 0u; i < CACHE_tile_LOADS; ++i) {
    const uint at = gl_LocalInvocationIndex + i * THREADS;
    if (at < TILE * ROW_CHUNKS) SHARED_TILE[at] = CACHE_tile_in[i];
  }
}
)glsl";
  const std::string tile =
      shared_tile.empty() ? std::string(cache_name) + "_tile" : std::string(shared_tile);
  text = replace_all(std::move(text), "SHARED_TILE", tile);
  return replace_all(replace_all(std::move(text), "CACHE", cache_name), "BUFFER", buffer_name) +
         f16_tile_chunk_glsl(cache_name, tile);
}

template <int D, decode_tiling T = default_decode_tiling(1)>
struct decode_f16 {
  using engine = decode_engine<D, T>;
  static constexpr auto name = tessel::name("decode_f16", "d", D, "h", T.heads, "r",
                                            T.heads_per_subgroup, "p", T.position_splits);
  using params = VecF16Params;
  // K and V rows are read as uvec4: 8 halves per load.
  using bindings = tessel::bindings<in<"q", float>, in<"keys", f16, vec<std::uint32_t, 4>>,
                                    in<"values", f16, vec<std::uint32_t, 4>>, out<"dst", float>>;
  using constants = tessel::constants<spec<"softcap", float, 0, 0.0f>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>>;
  using workgroup = tessel::workgroup<lanes{engine::subgroups}>;
  static constexpr extension extensions =
      extension::subgroup_basic | extension::subgroup_arithmetic | extension::subgroup_shuffle |
      extension::control_flow_attributes;

  // A staged row: its K and V halves.
  static constexpr std::uint32_t row_bytes = 4 * D;
  static constexpr std::uint32_t shared_bytes(const target& t) {
    return engine::engine_bytes() + engine::tile_positions(t, row_bytes) * row_bytes;
  }

  static std::string body(const target& t) {
    return engine::glsl(t, row_bytes) + f16_tile_glsl("key", "keys") +
           f16_tile_glsl("value", "values") + std::string(decode_key_value_hooks);
  }
};

// The shipped variants: every head count with its default tiling.
template <int D>
using decode_f16_head_variants =
    variant_list<decode_f16<D, default_decode_tiling(1)>, decode_f16<D, default_decode_tiling(2)>,
                 decode_f16<D, default_decode_tiling(4)>, decode_f16<D, default_decode_tiling(8)>>;

using decode_f16_variants =
    join_variants_t<decode_f16_head_variants<64>, decode_f16_head_variants<128>,
                    decode_f16_head_variants<256>, decode_f16_head_variants<512>>;

namespace detail {
inline constexpr std::string_view decode_op = "decode_f16";
}  // namespace detail

// Validates the arguments of an f16 decode call and chooses its split.
inline decode_plan plan_decode_f16(const vk::device_traits& device, const decode_args& a) {
  constexpr std::string_view op = detail::decode_op;
  const decode_plan plan = plan_decode(op, device, a, std::uint64_t{4} * a.head_dim);
  require_32bit_indexable(
      op, "keys",
      checked_product(op, "cache size", {a.batch, a.num_kv_heads, a.kv_capacity, a.head_dim}));
  return plan;
}

// Records one decode step with the variant decode_f16<D, T>: out =
// attention(q, keys, values). The plan's heads per group must be T.heads
// (pass heads_per_group = T.heads). `scratch` holds the partials when the
// plan splits heads (plan.scratch_floats > 0; it may be larger) and may be
// null otherwise. Everything is validated before anything is recorded.
template <int D, decode_tiling T>
void record_decode_f16_tiled(vk::recorder& rec, const vk::buffer<float>& q,
                             const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                             const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                             const decode_args& a) {
  constexpr std::string_view op = detail::decode_op;
  require(a.head_dim == D, op, "head_dim", a.head_dim,
          "must equal the variant's " + std::to_string(D));
  const decode_plan plan = plan_decode_f16(rec.device(), a);
  require(plan.heads_per_group == static_cast<std::uint32_t>(T.heads), op, "heads_per_group",
          plan.heads_per_group, "must equal the variant's " + std::to_string(T.heads));
  validate_decode_buffers(op, a, plan, q, out, scratch);
  const std::uint64_t cache = std::uint64_t{a.batch} * a.num_kv_heads * a.kv_capacity * D;
  require_elements(op, "keys", keys.size(), cache);
  require_elements(op, "values", values.size(), cache);

  const VecF16Params params{a.num_heads,
                            a.num_kv_heads,
                            a.head_dim,
                            a.kv_seq_len,
                            a.kv_capacity,
                            a.resolved_scale(),
                            static_cast<std::uint32_t>(a.mask),
                            a.sliding_window,
                            a.ring_start};
  const vk::spec_value spec[] = {vk::spec_value::of_float(0, a.softcap)};
  rec.dispatch<decode_f16<D, T>>(params, spec, plan.grid, q, keys, values,
                                 decode_destination(plan, out, scratch));
  record_decode_merge<D>(rec, a, plan, scratch, out);
}

// The same with the default tiling for the planned heads per group; any
// multiple of 8 as D.
template <int D>
void record_decode_f16_for(vk::recorder& rec, const vk::buffer<float>& q,
                           const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                           const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                           const decode_args& a) {
  decode_args planned = a;
  planned.heads_per_group = plan_decode_f16(rec.device(), a).heads_per_group;
  detail::with_heads(planned.heads_per_group, [&](auto heads) {
    record_decode_f16_tiled<D, default_decode_tiling(decltype(heads)::value)>(
        rec, q, keys, values, out, scratch, planned);
  });
}

// The same for a run-time head dim among the shipped variants (64, 128, 256
// and 512).
inline void record_decode_f16(vk::recorder& rec, const vk::buffer<float>& q,
                              const vk::buffer<f16>& keys, const vk::buffer<f16>& values,
                              const vk::buffer<float>& out, const vk::buffer<float>* scratch,
                              const decode_args& a) {
  with_head_dim<64, 128, 256, 512>(detail::decode_op, a.head_dim, [&](auto d) {
    record_decode_f16_for<decltype(d)::value>(rec, q, keys, values, out, scratch, a);
  });
}

}  // namespace tessel::kernels
