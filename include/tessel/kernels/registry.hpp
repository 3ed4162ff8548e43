// Every kernel variant and parameter block tessel ships, for tools and tests
// that iterate over all of them (dump, layout, the compile-every-variant test).
#pragma once

#include <vector>

#include "tessel/dsl/variant.hpp"
#include "tessel/kernels/decode_f16.hpp"
#include "tessel/kernels/decode_reduce.hpp"
#include "tessel/kernels/fwht.hpp"
#include "tessel/kernels/prefill.hpp"
#include "tessel/kernels/prefill_blk.hpp"
#include "tessel/kernels/prefill_coopmat.hpp"
#include "tessel/kernels/tq_decode.hpp"
#include "tessel/kernels/tq_encode.hpp"
#include "tessel/kernels/turboquant.hpp"

namespace tessel::kernels {

using registry =
    join_variants_t<fwht_variants, decode_reduce_variants, decode_reduce_unrotate_variants,
                    decode_f16_variants, decode_f16_coopmat_variants, tq_encode_variants,
                    tq_decode_variants, prefill_variants, prefill_blk_variants,
                    prefill_coopmat_variants>;

inline std::vector<const variant_info*> all_variants() {
  return registry::infos();
}

// Every parameter block, including those of kernels still to come.
inline std::vector<block_info> parameter_blocks() {
  return {describe_block<AttnParams>(),    describe_block<AttnMaskParams>(),
          describe_block<PrefillParams>(), describe_block<PrefillBlkParams>(),
          describe_block<VecF16Params>(),  describe_block<TqParams>(),
          describe_block<TqHbParams>(),    describe_block<ReduceParams>(),
          describe_block<FwhtParams>(),    describe_block<TqEncodeParams>()};
}

}  // namespace tessel::kernels
