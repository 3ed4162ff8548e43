// The decode reduce (KERNELS.md 7.4-7.5): merges the partial results that NWG
// workgroups wrote for each query row into the final output row.
//
// Partials layout (f32), for nrows rows of head_dim D and NWG workgroups:
//   unnormalized O: float4 chunk i of row r from workgroup w at float4 index
//                   r*(D/4)*NWG + NWG*i + w;
//   statistics:     after nrows*D*NWG floats, (S, M) of (r, w) at
//                   2*(r*NWG + w) and the next float.
// out[r] = sum_w exp(M_w - M*) O_w / sum_w exp(M_w - M*) S_w with M* = max_w M_w,
// and exactly 0 when the denominator is 0 (every slice fully masked).
#pragma once

#include <cstdint>
#include <string_view>

#include "tessel/dsl/description.hpp"
#include "tessel/dsl/layout.hpp"
#include "tessel/dsl/snippets.hpp"
#include "tessel/kernels/validate.hpp"
#include "tessel/vk/recorder.hpp"

namespace tessel::kernels {

// ReduceParams, 4 bytes.
struct ReduceParams {
  std::uint32_t nrows;
};
TESSEL_PARAMS(ReduceParams, nrows);
static_assert(layout<ReduceParams>::size == 4);
static_assert(layout<ReduceParams>::matches_host);

// Largest NWG the reduce accepts (the weights live in shared memory).
inline constexpr std::uint32_t max_decode_nwg = 256;

// Shared memory of snippets::decode_reduce_merge: the slice weights and one
// value per subgroup.
inline constexpr std::uint32_t decode_reduce_merge_bytes =
    (max_decode_nwg + snippets::decode_reduce_merge::subgroup_slots) * sizeof(float);

// Float count of the partials buffer for nrows rows, head_dim and nwg.
constexpr std::uint64_t decode_partials_size(std::uint64_t nrows, std::uint64_t head_dim,
                                             std::uint64_t nwg) {
  return nrows * nwg * (head_dim + 2);
}

// A row's output is cut into groups of up to 16 float4 chunks (64 dims), one
// workgroup each, so that a few long rows (D = 512 with 64 slices: 16 rows on
// 132 compute units) still spread over the machine; each chunk is merged by
// 8 invocations (snippets::decode_reduce_merge). Every workgroup of a row
// computes the row's slice weights. NWG is a specialization constant: a
// decode loop uses one or two values, each compiled once.
template <int D>
struct decode_reduce {
  static_assert(D % 4 == 0 && D > 0, "decode_reduce: head_dim must be a multiple of 4");
  static constexpr auto name = tessel::name("decode_reduce", "d", D);
  static constexpr std::uint32_t chunks_per_group = D / 4 < 16 ? D / 4 : 16;
  static constexpr std::uint32_t column_groups = (D / 4 + chunks_per_group - 1) / chunks_per_group;
  static constexpr std::uint32_t threads = 8 * chunks_per_group;
  using params = ReduceParams;
  using bindings = tessel::bindings<in<"partials", float, vec<float, 4>>, out<"dst", float>>;
  using constants = tessel::constants<spec<"nwg", std::uint32_t, 0, 32u>>;
  using geometry = tessel::geometry<constant<"D", static_cast<std::uint32_t>(D)>,
                                    constant<"MAX_NWG", max_decode_nwg>,
                                    constant<"CHUNKS_PER_GROUP", chunks_per_group>>;
  using workgroup = tessel::workgroup<threads>;
  static constexpr std::uint32_t shared_bytes(const target&) { return decode_reduce_merge_bytes; }
  using snippets = snippet_list<snippets::decode_reduce_merge>;
  static constexpr std::string_view body = R"glsl(
void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= params.nrows) return;
  const uint tid = gl_LocalInvocationIndex;
  decode_reduce_weights(params.nrows, row, tid);
  const uint chunk = gl_WorkGroupID.z * CHUNKS_PER_GROUP + tid / 8u;
  const uint part = tid % 8u;
  const vec4 merged = decode_reduce_chunk(row, chunk, part);
  if (chunk < D / 4u && part < 4u) dst[row * D + 4u * chunk + part] = merged[part];
}
)glsl";

  // Rows as row_grid lays them out, a row's column groups along z.
  static constexpr extent3 grid(std::uint32_t nrows) {
    extent3 groups = row_grid(nrows);
    groups.z = column_groups;
    return groups;
  }
};

// The reduce fused with the inverse rotation of TurboQuant (KERNELS.md 11.3):
// out[r] = R^-1(merged row r) = s * (H merged), for decode over a cache whose
// V was rotated. One workgroup of 128 invocations per row (the transform
// needs the whole row): the merge takes 16 float4 chunks a pass, 8
// invocations a chunk, into shared memory; then each of the 4 groups of 32
// invocations transforms the row with fwht.hpp's butterflies (D/32
// contiguous elements each), since their exchange barriers need the whole
// workgroup, and the first group writes it. Same partials, parameter block
// and specialization constant as decode_reduce; NWG = 1 is allowed too (it
// normalizes and unrotates a single slice).
template <int D>
struct decode_reduce_unrotate {
  static_assert(D >= 32 && D <= static_cast<int>(snippets::hadamard_max_dim) && (D & (D - 1)) == 0,
                "decode_reduce_unrotate: head_dim must be a power of two in [32, 512]");
  static constexpr auto name = tessel::name("decode_reduce_unrotate", "d", D);
  static constexpr std::uint32_t threads = 128;
  using params = ReduceParams;
  using bindings = typename decode_reduce<D>::bindings;
  using constants = tessel::constants<spec<"nwg", std::uint32_t, 0, 32u>>;
  using geometry = tessel::geometry<
      constant<"D", static_cast<std::uint32_t>(D)>, constant<"MAX_NWG", max_decode_nwg>,
      constant<"FWHT_EPT", static_cast<std::uint32_t>(D / 32)>,
      constant<"FWHT_GROUPS", threads / 32>, constant<"CHUNKS_PER_PASS", threads / 8>>;
  using workgroup = tessel::workgroup<threads>;
  using snippets = snippet_list<snippets::decode_reduce_merge, snippets::hadamard_signs,
                                snippets::fwht_butterflies>;
  // The merge's, the merged row, the FWHT exchange of every group.
  static constexpr std::uint32_t shared_bytes(const target&) {
    return decode_reduce_merge_bytes + (D + threads / 32 * D) * sizeof(float);
  }
  static constexpr std::string_view body = R"glsl(
shared float merged_row[D];

void main() {
  const uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (row >= params.nrows) return;
  const uint tid = gl_LocalInvocationIndex;
  decode_reduce_weights(params.nrows, row, tid);
  for (uint pass_first = 0u; pass_first < D / 4u; pass_first += CHUNKS_PER_PASS) {
    const uint chunk = pass_first + tid / 8u, part = tid % 8u;
    const vec4 merged = decode_reduce_chunk(row, chunk, part);
    if (chunk < D / 4u && part < 4u) merged_row[4u * chunk + part] = merged[part];
  }
  barrier();
  const uint group = tid / 32u, lane = tid % 32u;
  const uint first = lane * FWHT_EPT;
  float v[FWHT_EPT];
  for (uint j = 0u; j < FWHT_EPT; ++j) v[j] = merged_row[first + j];
  fwht_group(v, group, lane);
  const float norm = inversesqrt(float(D));
  if (group == 0u)
    for (uint j = 0u; j < FWHT_EPT; ++j)
      dst[row * D + first + j] = v[j] * norm * hadamard_sign(first + j);
}
)glsl";
};

using decode_reduce_variants =
    variant_list<decode_reduce<64>, decode_reduce<128>, decode_reduce<256>, decode_reduce<512>>;
using decode_reduce_unrotate_variants =
    variant_list<decode_reduce_unrotate<64>, decode_reduce_unrotate<128>,
                 decode_reduce_unrotate<256>, decode_reduce_unrotate<512>>;

// The reduce's shape rules for a variant of head dim `head_dim`.
inline void validate_decode_reduce_shape(std::uint32_t nrows, std::uint32_t head_dim,
                                         std::uint32_t nwg, std::uint64_t partials_elements,
                                         std::uint64_t dst_elements,
                                         std::string_view op = "decode_reduce") {
  require_positive(op, "nrows", nrows);
  require_in_range(op, "nwg", nwg, 1, max_decode_nwg);
  const std::uint64_t partials = checked_product(op, "partials size", {nrows, nwg, head_dim + 2u});
  require_32bit_indexable(op, "partials", partials);
  // A scratch buffer sized for a larger split may be reused.
  require(partials_elements >= partials, op, "partials element count", partials_elements,
          "must be >= " + std::to_string(partials) + " for the given shape");
  require_elements(op, "dst", dst_elements, checked_product(op, "dst size", {nrows, head_dim}));
}

// The same, and the head dim is one tessel ships.
inline void validate_decode_reduce(std::uint32_t nrows, std::uint32_t head_dim, std::uint32_t nwg,
                                   std::uint64_t partials_elements, std::uint64_t dst_elements,
                                   std::string_view op = "decode_reduce") {
  require_one_of(op, "head_dim", head_dim, {64, 128, 256, 512});
  validate_decode_reduce_shape(nrows, head_dim, nwg, partials_elements, dst_elements, op);
}

// Records the merge of `partials` (at least decode_partials_size floats)
// into `dst` ([nrows, D] f32) with the decode_reduce<D> variant.
template <int D>
void record_decode_reduce_for(vk::recorder& rec, const vk::buffer<float>& partials,
                              const vk::buffer<float>& dst, std::uint32_t nrows,
                              std::uint32_t nwg) {
  validate_decode_reduce_shape(nrows, D, nwg, partials.size(), dst.size());
  const vk::spec_value spec[] = {{0, nwg}};
  rec.dispatch<decode_reduce<D>>(ReduceParams{nrows}, spec, decode_reduce<D>::grid(nrows), partials,
                                 dst);
}

// The same for a run-time head dim among the shipped variants.
inline void record_decode_reduce(vk::recorder& rec, const vk::buffer<float>& partials,
                                 const vk::buffer<float>& dst, std::uint32_t nrows,
                                 std::uint32_t head_dim, std::uint32_t nwg) {
  validate_decode_reduce(nrows, head_dim, nwg, partials.size(), dst.size());
  with_head_dim<64, 128, 256, 512>("decode_reduce", head_dim, [&](auto d) {
    record_decode_reduce_for<decltype(d)::value>(rec, partials, dst, nrows, nwg);
  });
}

// Records the merge of `partials` into `dst` ([nrows, D] f32) followed by
// the inverse rotation of every row, with decode_reduce_unrotate<D>.
template <int D>
void record_decode_reduce_unrotate_for(vk::recorder& rec, const vk::buffer<float>& partials,
                                       const vk::buffer<float>& dst, std::uint32_t nrows,
                                       std::uint32_t nwg) {
  validate_decode_reduce_shape(nrows, D, nwg, partials.size(), dst.size(),
                               "decode_reduce_unrotate");
  const vk::spec_value spec[] = {{0, nwg}};
  rec.dispatch<decode_reduce_unrotate<D>>(ReduceParams{nrows}, spec, row_grid(nrows), partials,
                                          dst);
}

// The same for a run-time head dim among the shipped variants.
inline void record_decode_reduce_unrotate(vk::recorder& rec, const vk::buffer<float>& partials,
                                          const vk::buffer<float>& dst, std::uint32_t nrows,
                                          std::uint32_t head_dim, std::uint32_t nwg) {
  constexpr std::string_view op = "decode_reduce_unrotate";
  validate_decode_reduce(nrows, head_dim, nwg, partials.size(), dst.size(), op);
  with_head_dim<64, 128, 256, 512>(op, head_dim, [&](auto d) {
    record_decode_reduce_unrotate_for<decltype(d)::value>(rec, partials, dst, nrows, nwg);
  });
}

}  // namespace tessel::kernels
