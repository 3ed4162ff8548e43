// Flash-attention prefill (KERNELS.md sections 2, 3, 6): many query rows
// against many keys, f16 or bf16 in and out, f32 accumulation.
//
//   O[b, h, i] = softmax_j(scale * <Q[b, h, i], K[b, h / G, j]> + bias[i, j]) V[b, h / G, j]
//
// where G = num_heads / num_kv_heads (GQA) and bias comes from an optional
// additive (f16/bf16, -inf = blocked) or boolean (u8, 0 = blocked) mask of
// rank 2 ([query_len, key_len], broadcast) or 4 ([batch, num_heads, query_len,
// key_len]), plus in-kernel causal masking: row i sits at absolute position
// query_offset + i among the keys and attends keys j <= query_offset + i.
// A row with no attended key gives exact zeros.
//
// This header holds the parameter blocks, the problem description and its
// validation (shared with the reference, the catalog and any later variant
// of the same op), the portable kernel (subgroup arithmetic and shared memory
// only) and the host op. The tile classifier that lets the kernel skip
// blocked tiles is in prefill_blk.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// --- parameter blocks ------------------------------------------------------

// AttnParams, 160 bytes: the seed's block (KERNELS.md 3.2). Strides are in
// elements, 64-bit so that row * stride cannot overflow at 65536 x 65536; the
// inner (head-dim) stride is 1.
struct AttnParams {
  std::int32_t batch;
  std::int32_t num_heads;
  std::int32_t head_dim;
  std::int32_t query_len;
  std::int32_t key_len;
  std::int32_t gqa_factor;  // num_heads / num_kv_heads
  float scale;              // softmax scale; log2(e) is applied in-kernel, never folded in here
  float softcapping;
  std::int32_t num_query_tiles;          // ceil(query_len / BQ)
  std::int32_t num_key_tiles;            // ceil(key_len / BK)
  std::int32_t num_query_tiles_aligned;  // query_len / BQ
  std::int32_t num_key_tiles_aligned;    // key_len / BK
  std::int32_t query_len_rem;            // query_len % BQ
  std::int32_t key_len_rem;              // key_len % BK
  std::int32_t query_offset;             // absolute position of query row 0 (causal)
  std::int32_t pad;                      // keeps the stride arrays 8-byte aligned; always 0
  std::int64_t q_strides[3];             // batch, head, row
  std::int64_t k_strides[3];
  std::int64_t v_strides[3];
  std::int64_t o_strides[3];
};
TESSEL_PARAMS(AttnParams, batch, num_heads, head_dim, query_len, key_len, gqa_factor, scale,
              softcapping, num_query_tiles, num_key_tiles, num_query_tiles_aligned,
              num_key_tiles_aligned, query_len_rem, key_len_rem, query_offset, pad, q_strides,
              k_strides, v_strides, o_strides);
static_assert(layout<AttnParams>::size == 160);
static_assert(layout<AttnParams>::matches_host);

// AttnMaskParams, 24 bytes: batch, head and row strides of the mask in
// elements (column stride 1). A rank-2 broadcast mask has (0, 0, key_len).
struct AttnMaskParams {
  std::int64_t mask_strides[3];
};
TESSEL_PARAMS(AttnMaskParams, mask_strides);
static_assert(layout<AttnMaskParams>::size == 24);
static_assert(layout<AttnMaskParams>::matches_host);

// PrefillParams, 184 bytes: the kernel's one parameter block, AttnParams
// followed by AttnMaskParams. A description has a single block, and the seed
// passed these two separately; concatenating them keeps both layouts.
struct PrefillParams {
  std::int32_t batch;
  std::int32_t num_heads;
  std::int32_t head_dim;
  std::int32_t query_len;
  std::int32_t key_len;
  std::int32_t gqa_factor;
  float scale;
  float softcapping;
  std::int32_t num_query_tiles;
  std::int32_t num_key_tiles;
  std::int32_t num_query_tiles_aligned;
  std::int32_t num_key_tiles_aligned;
  std::int32_t query_len_rem;
  std::int32_t key_len_rem;
  std::int32_t query_offset;
  std::int32_t pad;
  std::int64_t q_strides[3];
  std::int64_t k_strides[3];
  std::int64_t v_strides[3];
  std::int64_t o_strides[3];
  std::int64_t mask_strides[3];
};
TESSEL_PARAMS(PrefillParams, batch, num_heads, head_dim, query_len, key_len, gqa_factor, scale,
              softcapping, num_query_tiles, num_key_tiles, num_query_tiles_aligned,
              num_key_tiles_aligned, query_len_rem, key_len_rem, query_offset, pad, q_strides,
              k_strides, v_strides, o_strides, mask_strides);
static_assert(layout<PrefillParams>::size == 184);
static_assert(layout<PrefillParams>::matches_host);

namespace detail {
// PrefillParams is AttnParams field for field, then AttnMaskParams.
constexpr bool prefill_params_concatenate_seed_blocks() {
  constexpr auto attn = layout<AttnParams>::offsets;
  constexpr auto prefill = layout<PrefillParams>::offsets;
  if (prefill.size() != attn.size() + layout<AttnMaskParams>::field_count) return false;
  for (std::size_t i = 0; i < attn.size(); ++i)
    if (prefill[i] != attn[i]) return false;
  return prefill[attn.size()] == layout<AttnParams>::size;
}
}  // namespace detail
static_assert(detail::prefill_params_concatenate_seed_blocks());

// --- the problem -----------------------------------------------------------

// Where the head dim is contiguous, the rest is strides:
//   head_major: Q, O [batch, num_heads, query_len, D]; K, V [batch, num_kv_heads, kv_capacity, D]
//   seq_major:  Q, O [batch, query_len, num_heads, D]; K, V [batch, kv_capacity, num_kv_heads, D]
enum class attention_layout : std::uint32_t { head_major = 0, seq_major = 1 };

struct prefill_problem {
  std::uint32_t batch = 1;
  std::uint32_t num_heads = 1;
  std::uint32_t num_kv_heads = 1;
  std::uint32_t query_len = 0;
  std::uint32_t key_len = 0;
  std::uint32_t head_dim = 0;
  // Positions allocated per KV head (a cache being filled); 0 means key_len.
  // Only the first key_len are read.
  std::uint32_t kv_capacity = 0;
  attention_layout layout = attention_layout::head_major;
  // Softmax scale; 1/sqrt(head_dim) when absent.
  std::optional<float> scale;
  bool causal = false;
  // Absolute position of query row 0 among the keys (causal only).
  std::uint32_t query_offset = 0;
  // Rank of the mask, when one is given: 2 ([query_len, key_len], shared by
  // every batch and head) or 4 ([batch, num_heads, query_len, key_len]).
  std::uint32_t mask_rank = 2;

  std::uint32_t capacity() const { return kv_capacity == 0 ? key_len : kv_capacity; }
  float softmax_scale() const {
    return scale ? *scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  }
};

// --- geometry ----------------------------------------------------------------

// Lanes of one row group: the unit that splits a query row's head dim and
// reduces across it (snippets::group8_reductions).
inline constexpr std::uint32_t prefill_group_lanes = 8;
inline constexpr std::uint32_t prefill_threads = 128;
inline constexpr std::uint32_t prefill_groups = prefill_threads / prefill_group_lanes;
// f32 elements of one K (or V) tile in shared memory: K and V together take
// 32 KiB, the portable limit.
inline constexpr std::uint32_t prefill_tile_elements = 4096;

struct prefill_geometry {
  std::uint32_t rows_per_group;  // query rows each group of 8 lanes owns
  std::uint32_t query_rows;      // BQ: query rows per workgroup
  std::uint32_t keys;            // BK: keys per shared-memory tile (a multiple of 8)
  std::uint32_t chunk_width;     // elements per vector (vec4, or vec2 when D % 32 != 0)
  std::uint32_t shared_bytes;    // the K and V tiles, f32
};

// Two rows per group while the accumulators stay small (D <= 128), else one;
// as many keys per tile as 16 KiB of f32 holds, 8 to 64.
constexpr prefill_geometry prefill_geometry_for(std::uint32_t head_dim) {
  prefill_geometry g{};
  g.rows_per_group = head_dim <= 128 ? 2 : 1;
  g.query_rows = prefill_groups * g.rows_per_group;
  const std::uint32_t fit = head_dim == 0 ? 64 : prefill_tile_elements / head_dim / 8 * 8;
  g.keys = std::clamp<std::uint32_t>(fit, 8, 64);
  g.chunk_width = head_dim % (4 * prefill_group_lanes) == 0 ? 4 : 2;
  g.shared_bytes = 2 * g.keys * head_dim * static_cast<std::uint32_t>(sizeof(float));
  return g;
}

// Planes of tile classes (prefill_blk.hpp) for the problem's mask: one
// plane per (batch, head) for a rank-4 mask, a single plane for rank 2.
inline std::uint64_t prefill_blk_planes(const prefill_problem& p) {
  return p.mask_rank == 4 ? std::uint64_t{p.batch} * p.num_heads : 1;
}

// Element counts of every operand of the problem.
struct prefill_sizes {
  std::uint64_t q = 0, k = 0, v = 0, o = 0, mask = 0, blk = 0;
};

inline prefill_sizes prefill_sizes_of(const prefill_problem& p) {
  constexpr std::string_view op = "prefill";
  const prefill_geometry g = prefill_geometry_for(p.head_dim);
  prefill_sizes s;
  s.q = s.o =
      checked_product(op, "query element count", {p.batch, p.num_heads, p.query_len, p.head_dim});
  s.k = s.v =
      checked_product(op, "key element count", {p.batch, p.num_kv_heads, p.capacity(), p.head_dim});
  s.mask = p.mask_rank == 4 ? checked_product(op, "mask element count",
                                              {p.batch, p.num_heads, p.query_len, p.key_len})
                            : checked_product(op, "mask element count", {p.query_len, p.key_len});
  s.blk = checked_product(
      op, "blk element count",
      {prefill_blk_planes(p), ceil_div(p.query_len, g.query_rows), ceil_div(p.key_len, g.keys)});
  return s;
}

// --- validation --------------------------------------------------------------

// The shape and options, independent of buffers and of the device.
inline void validate_prefill_problem(const prefill_problem& p) {
  constexpr std::string_view op = "prefill";
  constexpr std::uint64_t int_max = std::numeric_limits<std::int32_t>::max();
  // The kernel's grid axes (query tiles, heads, batch) and the classifier's
  // (key tiles) stay within what every Vulkan device dispatches.
  constexpr std::uint64_t grid_max = max_grid_x;
  require(p.head_dim % 16 == 0 && p.head_dim >= 16 && p.head_dim <= 512, op, "head_dim", p.head_dim,
          "must be a multiple of 16 in [16, 512]");
  require_positive(op, "batch", p.batch);
  require_positive(op, "num_heads", p.num_heads);
  require_positive(op, "num_kv_heads", p.num_kv_heads);
  require_positive(op, "query_len", p.query_len);
  require_positive(op, "key_len", p.key_len);
  require(p.num_heads % p.num_kv_heads == 0, op, "num_heads", p.num_heads,
          "must be a multiple of num_kv_heads = " + std::to_string(p.num_kv_heads));
  require(p.kv_capacity == 0 || p.kv_capacity >= p.key_len, op, "kv_capacity", p.kv_capacity,
          "must be 0 (= key_len) or >= key_len = " + std::to_string(p.key_len));
  require(p.capacity() <= int_max, op, "kv_capacity", p.capacity(), "must fit int32");
  require(std::uint64_t{p.query_offset} + p.query_len <= int_max, op, "query_offset + query_len",
          std::uint64_t{p.query_offset} + p.query_len, "must fit int32");
  require(p.layout == attention_layout::head_major || p.layout == attention_layout::seq_major, op,
          "layout", static_cast<std::uint32_t>(p.layout),
          "must be 0 (head_major) or 1 (seq_major)");
  require(p.mask_rank == 2 || p.mask_rank == 4, op, "mask_rank", p.mask_rank, "must be 2 or 4");
  require(std::isfinite(p.softmax_scale()), op, "scale", std::to_string(p.softmax_scale()),
          "must be finite");
  const prefill_geometry g = prefill_geometry_for(p.head_dim);
  require(p.batch <= grid_max, op, "batch", p.batch,
          "must be <= " + std::to_string(grid_max) + " (one workgroup row per batch)");
  require(p.num_heads <= grid_max, op, "num_heads", p.num_heads,
          "must be <= " + std::to_string(grid_max) + " (one workgroup row per head)");
  require(ceil_div(p.query_len, g.query_rows) <= grid_max, op, "query_len", p.query_len,
          "must be <= " + std::to_string(grid_max * g.query_rows) + " for head_dim " +
              std::to_string(p.head_dim) + " (" + std::to_string(grid_max) + " tiles of " +
              std::to_string(g.query_rows) + " rows)");
  require(ceil_div(p.key_len, g.keys) <= grid_max, op, "key_len", p.key_len,
          "must be <= " + std::to_string(grid_max * g.keys) + " for head_dim " +
              std::to_string(p.head_dim) + " (" + std::to_string(grid_max) + " tiles of " +
              std::to_string(g.keys) + " keys)");
  require(prefill_blk_planes(p) <= grid_max, op, "batch * num_heads", prefill_blk_planes(p),
          "must be <= " + std::to_string(grid_max) + " with a rank-4 mask");
}

// Element counts of the operands a caller passes; nullopt = not given.
struct prefill_operands {
  std::uint64_t q = 0, k = 0, v = 0, o = 0;
  std::optional<std::uint64_t> mask, blk;
};

// Every operand holds exactly what the shape needs, and fits the kernel's
// 32-bit indexing; blk comes only with a mask.
inline void validate_prefill(const prefill_problem& p, const prefill_operands& given) {
  constexpr std::string_view op = "prefill";
  validate_prefill_problem(p);
  const prefill_sizes need = prefill_sizes_of(p);
  require_32bit_indexable(op, "q", need.q);
  require_32bit_indexable(op, "k", need.k);
  require_elements(op, "q", given.q, need.q);
  require_elements(op, "k", given.k, need.k);
  require_elements(op, "v", given.v, need.v);
  require_elements(op, "o", given.o, need.o);
  if (given.mask) {
    require_32bit_indexable(op, "mask", need.mask);
    require_elements(op, "mask", *given.mask, need.mask);
  }
  if (given.blk) {
    require(given.mask.has_value(), op, "blk", "given",
            "needs a mask (the tile classes describe one)");
    require_32bit_indexable(op, "blk", need.blk);
    require_elements(op, "blk", *given.blk, need.blk);
  }
}

// Element types of the run-time paths (catalog, .npy files); the typed host
// op checks the same at compile time.
inline void validate_prefill_types(scalar_kind q, scalar_kind k, scalar_kind v,
                                   std::optional<scalar_kind> mask) {
  constexpr std::string_view op = "prefill";
  require(q == scalar_kind::f16 || q == scalar_kind::bf16, op, "q element type", kind_name(q),
          "must be f16 or bf16");
  require(k == q, op, "k element type", kind_name(k),
          "must equal q's " + std::string(kind_name(q)));
  require(v == q, op, "v element type", kind_name(v),
          "must equal q's " + std::string(kind_name(q)));
  if (mask)
    require(*mask == q || *mask == scalar_kind::u8, op, "mask element type", kind_name(*mask),
            "must be q's " + std::string(kind_name(q)) + " (additive) or u8 (boolean)");
}

// The parameter block of a problem: shapes, tile counts and strides.
inline PrefillParams prefill_params(const prefill_problem& p) {
  const prefill_geometry g = prefill_geometry_for(p.head_dim);
  const std::int64_t d = p.head_dim, heads = p.num_heads, kv_heads = p.num_kv_heads,
                     rows = p.query_len, cap = p.capacity();
  PrefillParams out{};
  out.batch = static_cast<std::int32_t>(p.batch);
  out.num_heads = static_cast<std::int32_t>(p.num_heads);
  out.head_dim = static_cast<std::int32_t>(p.head_dim);
  out.query_len = static_cast<std::int32_t>(p.query_len);
  out.key_len = static_cast<std::int32_t>(p.key_len);
  out.gqa_factor = static_cast<std::int32_t>(p.num_heads / p.num_kv_heads);
  out.scale = p.softmax_scale();
  out.softcapping = 1.0f;  // unread, as in the seed (which always wrote 1.0)
  out.num_query_tiles = static_cast<std::int32_t>(ceil_div(p.query_len, g.query_rows));
  out.num_key_tiles = static_cast<std::int32_t>(ceil_div(p.key_len, g.keys));
  out.num_query_tiles_aligned = static_cast<std::int32_t>(p.query_len / g.query_rows);
  out.num_key_tiles_aligned = static_cast<std::int32_t>(p.key_len / g.keys);
  out.query_len_rem = static_cast<std::int32_t>(p.query_len % g.query_rows);
  out.key_len_rem = static_cast<std::int32_t>(p.key_len % g.keys);
  out.query_offset = p.causal ? static_cast<std::int32_t>(p.query_offset) : 0;
  out.pad = 0;
  const auto set = [](std::int64_t(&s)[3], std::int64_t batch, std::int64_t head,
                      std::int64_t row) {
    s[0] = batch;
    s[1] = head;
    s[2] = row;
  };
  if (p.layout == attention_layout::head_major) {
    set(out.q_strides, heads * rows * d, rows * d, d);
    set(out.k_strides, kv_heads * cap * d, cap * d, d);
  } else {
    set(out.q_strides, rows * heads * d, d, heads * d);
    set(out.k_strides, cap * kv_heads * d, d, kv_heads * d);
  }
  std::copy(std::begin(out.q_strides), std::end(out.q_strides), std::begin(out.o_strides));
  std::copy(std::begin(out.k_strides), std::end(out.k_strides), std::begin(out.v_strides));
  const std::int64_t keys = p.key_len;
  if (p.mask_rank == 4)
    set(out.mask_strides, heads * rows * keys, rows * keys, keys);
  else
    set(out.mask_strides, 0, 0, keys);
  return out;
}

// --- the portable kernel -----------------------------------------------------

template <class T>
concept prefill_element = std::same_as<T, f16> || std::same_as<T, bf16>;

// A mask is additive in the I/O type or boolean (u8, nonzero = attend).
template <class M, class T>
concept prefill_mask_element = std::same_as<M, T> || std::same_as<M, u8>;

namespace detail {

// GLSL that reads and writes elements of type T as float, and loads and
// stores vectors of `width` consecutive elements.
template <prefill_element T>
std::string element_access_glsl(std::uint32_t width) {
  constexpr bool is_bf16 = std::same_as<T, bf16>;
  std::string out = is_bf16 ? "#define ELEMENT_TO_FLOAT(x) bf16_to_float(x)\n"
                              "#define FLOAT_TO_ELEMENT(x) float_to_bf16(x)\n"
                            : "#define ELEMENT_TO_FLOAT(x) float(x)\n"
                              "#define FLOAT_TO_ELEMENT(x) float16_t(x)\n";
  static constexpr std::string_view components[] = {"x", "y", "z", "w"};
  const std::string vec = "vec" + std::to_string(width);
  out += "#define CHUNK " + vec + "\n#define LOAD_CHUNK(buf, i) " + vec + "(";
  for (std::uint32_t c = 0; c < width; ++c)
    out += std::string(c ? ", " : "") + "ELEMENT_TO_FLOAT(buf[(i) + " + std::to_string(c) + "u])";
  out += ")\n#define STORE_CHUNK(buf, i, value) ";
  for (std::uint32_t c = 0; c < width; ++c)
    out += "buf[(i) + " + std::to_string(c) + "u] = FLOAT_TO_ELEMENT((value)." +
           std::string(components[c]) + "); ";
  return out + "\n";
}

inline constexpr std::string_view prefill_constants = R"glsl(
const float LOG2E = 1.44269504088896341;
// -FLT_MAX/2: the running max starts finite, so exp2(old - new) is never NaN
// and a row whose every score is -inf keeps sum 0.
const float MAX_SENTINEL = -1.70141173e38;
)glsl";

// The kernel's main(); see prefill below for the work split.
inline constexpr std::string_view prefill_main = R"glsl(
shared CHUNK k_tile[TILE_CHUNKS];
shared CHUNK v_tile[TILE_CHUNKS];

void main() {
  const float neg_inf = uintBitsToFloat(0xFF800000u);
  const uint query_tile = gl_WorkGroupID.x;
  const uint head = gl_WorkGroupID.y;
  const uint batch = gl_WorkGroupID.z;
  const uint kv_head = head / uint(params.gqa_factor);
  const uint query_len = uint(params.query_len);
  const uint key_len = uint(params.key_len);
  const uint query_offset = uint(params.query_offset);
  const uint num_key_tiles = uint(params.num_key_tiles);
  const uint tid = gl_LocalInvocationIndex;
  // Aligned groups of 8 lanes; group g owns rows g*ROWS .. g*ROWS+ROWS-1 of
  // the tile, lane l its dims CW*(8j + l) .. +CW-1 for j < LANE_CHUNKS.
  const uint lane = gl_SubgroupInvocationID & 7u;
  const uint group_first_lane = gl_SubgroupInvocationID & ~7u;
  const uint row_group = gl_SubgroupID * (gl_SubgroupSize >> 3) + (gl_SubgroupInvocationID >> 3);
  const uint first_row = query_tile * BQ + row_group * ROWS;

  // Offsets are 32-bit: the host checks every buffer's element count fits.
  const uint q_row_stride = uint(params.q_strides[2]);
  const uint k_row_stride = uint(params.k_strides[2]);
  const uint v_row_stride = uint(params.v_strides[2]);
  const uint o_row_stride = uint(params.o_strides[2]);
  const uint mask_row_stride = uint(params.mask_strides[2]);
  const uint q_base = batch * uint(params.q_strides[0]) + head * uint(params.q_strides[1]);
  const uint k_base = batch * uint(params.k_strides[0]) + kv_head * uint(params.k_strides[1]);
  const uint v_base = batch * uint(params.v_strides[0]) + kv_head * uint(params.v_strides[1]);
  const uint o_base = batch * uint(params.o_strides[0]) + head * uint(params.o_strides[1]);
  const uint mask_base =
      batch * uint(params.mask_strides[0]) + head * uint(params.mask_strides[1]);

  // Query rows live in registers, scaled by scale * log2(e) in f32 so the
  // softmax runs in base 2. Rows past query_len are zero and never stored.
  const float q_scale = params.scale * LOG2E;
  CHUNK q[ROWS][LANE_CHUNKS];
  CHUNK o[ROWS][LANE_CHUNKS];
  float row_max[ROWS];
  float row_sum[ROWS];  // this lane's share; the group's sum is taken at the end
  for (uint r = 0u; r < ROWS; ++r) {
    const uint row = first_row + r;
    for (uint j = 0u; j < LANE_CHUNKS; ++j) {
      q[r][j] = CHUNK(0.0);
      if (align_Q || row < query_len)
        q[r][j] = LOAD_CHUNK(Q, q_base + row * q_row_stride + CW * (j * 8u + lane)) * q_scale;
      o[r][j] = CHUNK(0.0);
    }
    row_max[r] = MAX_SENTINEL;
    row_sum[r] = 0.0;
  }

  // Causal: no row of this tile attends a key past its last row's position.
  uint tile_end = num_key_tiles;
  if (do_causal) {
    const uint last_row = min(query_tile * BQ + BQ, query_len) - 1u;
    tile_end = min(tile_end, (last_row + query_offset) / BK + 1u);
  }
  // A rank-4 mask has one plane of tile classes per (batch, head).
  const bool mask_broadcast = params.mask_strides[0] == 0 && params.mask_strides[1] == 0;
  const uint blk_base = (mask_broadcast ? 0u : batch * uint(params.num_heads) + head) *
                        uint(params.num_query_tiles) * num_key_tiles +
                        query_tile * num_key_tiles;

  for (uint key_tile = 0u; key_tile < tile_end; ++key_tile) {
    // 0: every cell blocked, skip the tile; 2: every cell attended with bias
    // 0, skip the mask; 1: mixed. Uniform over the workgroup.
    uint tile_class = 1u;
    if (has_blk) tile_class = uint(blk[blk_base + key_tile]);
    if (tile_class == 0u) continue;

    // K and V tiles to shared memory as f32. Keys past key_len are zeros,
    // never read: their scores are -inf, and 0 * V must stay 0.
    const uint first_key = key_tile * BK;
    for (uint c = tid; c < TILE_CHUNKS; c += THREADS) {
      const uint key = first_key + c / ROW_CHUNKS;
      const uint d = CW * (c % ROW_CHUNKS);
      CHUNK k_chunk = CHUNK(0.0);
      CHUNK v_chunk = CHUNK(0.0);
      if (align_K || key < key_len) {
        k_chunk = LOAD_CHUNK(K, k_base + key * k_row_stride + d);
        v_chunk = LOAD_CHUNK(V, v_base + key * v_row_stride + d);
      }
      k_tile[c] = k_chunk;
      v_tile[c] = v_chunk;
    }
    barrier();

    const bool add_mask = has_mask && tile_class == 1u;
    for (uint group_key = 0u; group_key < BK; group_key += 8u) {
      // Each lane's partial dot products over its dims with 8 keys; the
      // reduce-scatter leaves lane l the full score of key group_key + l.
      float partial[ROWS][8];
      for (uint r = 0u; r < ROWS; ++r)
        for (uint k = 0u; k < 8u; ++k) partial[r][k] = 0.0;
      for (uint j = 0u; j < LANE_CHUNKS; ++j)
        for (uint k = 0u; k < 8u; ++k) {
          const CHUNK k_chunk = k_tile[(group_key + k) * ROW_CHUNKS + j * 8u + lane];
          for (uint r = 0u; r < ROWS; ++r) partial[r][k] += dot(q[r][j], k_chunk);
        }
      const uint key = first_key + group_key + lane;
      float p[ROWS];
      for (uint r = 0u; r < ROWS; ++r) {
        const uint row = first_row + r;
        float score = group8_reduce_scatter(partial[r], lane);
        if (!align_K && key >= key_len) {
          score = neg_inf;
        } else {
          if (do_causal && key > row + query_offset) score = neg_inf;
          if (add_mask && (align_Q || row < query_len))
            score = masked_score(score, mask_base + row * mask_row_stride + key);
        }
        // Online softmax, base 2, over these 8 keys.
        const float new_max = max(row_max[r], group8_max(score));
        const float correction = exp2(row_max[r] - new_max);
        p[r] = exp2(score - new_max);
        row_max[r] = new_max;
        row_sum[r] = row_sum[r] * correction + p[r];
        for (uint j = 0u; j < LANE_CHUNKS; ++j) o[r][j] *= correction;
      }
      // O += P V: each key's probability reaches the group's lanes by shuffle.
      for (uint k = 0u; k < 8u; ++k) {
        float weight[ROWS];
        for (uint r = 0u; r < ROWS; ++r)
          weight[r] = subgroupShuffle(p[r], group_first_lane + k);
        for (uint j = 0u; j < LANE_CHUNKS; ++j) {
          const CHUNK v_chunk = v_tile[(group_key + k) * ROW_CHUNKS + j * 8u + lane];
          for (uint r = 0u; r < ROWS; ++r) o[r][j] += weight[r] * v_chunk;
        }
      }
    }
    barrier();
  }

  for (uint r = 0u; r < ROWS; ++r) {
    // The one guard: a row that attended nothing has sum 0 and gives zeros.
    const float total = group8_sum(row_sum[r]);
    const uint row = first_row + r;
    if (align_Q || row < query_len) {
      for (uint j = 0u; j < LANE_CHUNKS; ++j) {
        const CHUNK value = total == 0.0 ? CHUNK(0.0) : o[r][j] / total;
        STORE_CHUNK(O, o_base + row * o_row_stride + CW * (j * 8u + lane), value);
      }
    }
  }
}
)glsl";

template <prefill_element T, class M>
std::string prefill_mask_glsl() {
  if constexpr (std::same_as<M, u8>) {
    return R"glsl(
float masked_score(float score, uint i) {
  return mask[i] != uint8_t(0) ? score : uintBitsToFloat(0xFF800000u);
}
)glsl";
  } else {
    return R"glsl(
float masked_score(float score, uint i) { return score + LOG2E * ELEMENT_TO_FLOAT(mask[i]); }
)glsl";
  }
}

}  // namespace detail

// The portable prefill for head dim D (any multiple of 16 up to 512), I/O
// type T and mask type M (T: additive, u8: boolean; a variant without a mask
// is the additive one with has_mask false).
//
// Work split: a workgroup of 128 invocations takes BQ query rows of one
// (batch, head) and streams the keys through shared memory BK at a time, K
// and V converted to f32. The invocations form 16 groups of 8 lanes; a group
// owns ROWS query rows and each lane D/8 of their dims, so Q and the output
// accumulators stay in registers and every shared-memory read of a lane is
// contiguous with its neighbours'. Per 8 keys a lane computes partial dot
// products over its dims, a reduce-scatter inside the group gives each lane
// one key's score, the online softmax runs on those, and the probabilities
// are shuffled back to all lanes for O += P V. Only 8-lane groups are
// assumed, so the text is the same on 8-lane (lavapipe) and 32-lane (NVIDIA)
// subgroups.
template <int D, prefill_element T, prefill_mask_element<T> M = T>
struct prefill {
  static_assert(D >= 16 && D <= 512 && D % 16 == 0,
                "prefill: head_dim must be a multiple of 16 in [16, 512]");
  static constexpr prefill_geometry tiles = prefill_geometry_for(D);
  static_assert(tiles.shared_bytes <= targets::portable.shared_memory_bytes &&
                    tiles.shared_bytes <= targets::nvidia.shared_memory_bytes,
                "prefill: the K and V tiles must fit the shared memory of every target");

  static constexpr auto name = [] {
    if constexpr (std::same_as<M, u8>)
      return tessel::name("prefill", kind_name(scalar_traits<T>::kind), "d", D, "boolmask");
    else
      return tessel::name("prefill", kind_name(scalar_traits<T>::kind), "d", D);
  }();
  using params = PrefillParams;
  using bindings = tessel::bindings<in<"Q", T>, in<"K", T>, in<"V", T>, out<"O", T>, in<"mask", M>,
                                    in<"blk", u8>>;
  // The seed's constant ids (KERNELS.md 3.1).
  using constants = tessel::constants<spec<"align_Q", bool, 200>, spec<"align_K", bool, 201>,
                                      spec<"has_mask", bool, 300>, spec<"do_causal", bool, 301>,
                                      spec<"has_blk", bool, 303>>;
  using geometry =
      tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                       constant<"BQ", tiles.query_rows>, constant<"BK", tiles.keys>,
                       constant<"ROWS", tiles.rows_per_group>, constant<"CW", tiles.chunk_width>,
                       constant<"ROW_CHUNKS", D / tiles.chunk_width>,
                       constant<"LANE_CHUNKS", D / tiles.chunk_width / prefill_group_lanes>,
                       constant<"TILE_CHUNKS", tiles.keys * D / tiles.chunk_width>,
                       constant<"THREADS", prefill_threads>>;
  using workgroup = tessel::workgroup<prefill_threads>;
  using snippets =
      std::conditional_t<std::same_as<T, bf16>,
                         snippet_list<snippets::bf16_conversion, snippets::group8_reductions>,
                         snippet_list<snippets::group8_reductions>>;
  static constexpr std::uint32_t shared_bytes(const target&) { return tiles.shared_bytes; }
  static std::string body(const target&) {
    return detail::element_access_glsl<T>(tiles.chunk_width) +
           std::string(detail::prefill_constants) + detail::prefill_mask_glsl<T, M>() +
           std::string(detail::prefill_main);
  }
};

// The head dims shipped as variants, each with f16 and bf16 I/O and an
// additive or boolean mask.
template <int D>
using prefill_variants_d =
    variant_list<prefill<D, f16>, prefill<D, f16, u8>, prefill<D, bf16>, prefill<D, bf16, u8>>;
using prefill_variants = join_variants_t<prefill_variants_d<64>, prefill_variants_d<128>,
                                         prefill_variants_d<256>, prefill_variants_d<512>>;

// --- the host op -------------------------------------------------------------

namespace detail {

template <class E>
std::optional<std::uint64_t> size_if(const vk::buffer<E>* b) {
  return b ? std::optional<std::uint64_t>(b->size()) : std::nullopt;
}

}  // namespace detail

// Records variant D of the prefill (for a head dim not in the shipped list:
// instantiating prefill<D, ...> is all it takes). `mask` and `blk` may be
// null; blk (prefill_blk.hpp) needs the mask it was computed from.
// Everything is validated before anything is recorded.
template <int D, prefill_element T, prefill_mask_element<T> M = T>
void record_prefill_variant(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                            const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o,
                            const vk::buffer<M>* mask = nullptr,
                            const vk::buffer<u8>* blk = nullptr) {
  constexpr std::string_view op = "prefill";
  require(p.head_dim == static_cast<std::uint32_t>(D), op, "head_dim", p.head_dim,
          "must equal the variant's " + std::to_string(D));
  validate_prefill(
      p, {q.size(), k.size(), v.size(), o.size(), detail::size_if(mask), detail::size_if(blk)});
  require(rec.target().subgroup_size >= prefill_group_lanes, op, "device subgroup size",
          rec.target().subgroup_size, "must be >= 8");
  const PrefillParams params = prefill_params(p);
  constexpr prefill_geometry g = prefill_geometry_for(D);
  const vk::spec_value spec[] = {{200, p.query_len % g.query_rows == 0 ? 1u : 0u},
                                 {201, p.key_len % g.keys == 0 ? 1u : 0u},
                                 {300, mask ? 1u : 0u},
                                 {301, p.causal ? 1u : 0u},
                                 {303, blk ? 1u : 0u}};
  const extent3 grid{static_cast<std::uint32_t>(params.num_query_tiles), p.num_heads, p.batch};
  rec.dispatch<prefill<D, T, M>>(params, spec, grid, q, k, v, o, mask, blk);
}

// Records the prefill of `p` for the shipped head dims (64, 128, 256, 512):
// without a mask, with an additive (T) or boolean (u8) mask, and with the
// mask's tile classes (record_prefill_blk) to skip blocked tiles.
template <prefill_element T>
void record_prefill(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                    const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o) {
  with_head_dim<64, 128, 256, 512>("prefill", p.head_dim, [&](auto d) {
    record_prefill_variant<decltype(d)::value, T>(rec, p, q, k, v, o);
  });
}

template <prefill_element T, prefill_mask_element<T> M>
void record_prefill(vk::recorder& rec, const prefill_problem& p, const vk::buffer<T>& q,
                    const vk::buffer<T>& k, const vk::buffer<T>& v, const vk::buffer<T>& o,
                    const vk::buffer<M>& mask, const vk::buffer<u8>* blk = nullptr) {
  with_head_dim<64, 128, 256, 512>("prefill", p.head_dim, [&](auto d) {
    record_prefill_variant<decltype(d)::value, T, M>(rec, p, q, k, v, o, &mask, blk);
  });
}

}  // namespace tessel::kernels
