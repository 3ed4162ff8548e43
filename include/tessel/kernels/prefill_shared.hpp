// What the prefill kernels share (KERNELS.md sections 2, 3, 6): the
// parameter blocks, the problem description and its validation, the tile
// geometry that the tile classes (prefill_blk.hpp) are laid out in, and the
// GLSL pieces every prefill kernel uses (element access, constants, masks).
// The kernels themselves are the portable one (prefill.hpp) and the
// cooperative-matrix one (prefill_coopmat.hpp); prefill.hpp is the header to
// include, with the host op that picks between them.
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
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/buffer.hpp"

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

// --- what the kernels share ---------------------------------------------------

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

// masked_score(score, i): a base-2 score with mask element i applied.
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

// The element count of an optional operand.
template <class E>
std::optional<std::uint64_t> size_if(const vk::buffer<E>* b) {
  return b ? std::optional<std::uint64_t>(b->size()) : std::nullopt;
}

}  // namespace detail

}  // namespace tessel::kernels
