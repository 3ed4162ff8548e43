// The catalog of ops and the registry of variants, compiled once for
// tessel's own programs: the `tessel` CLI, the tests and the fuzzers.
// Including tessel/kernels/catalog.hpp or registry.hpp instantiates every
// kernel of every head dim; a translation unit that only walks the lists
// includes this instead and links tessel_catalog.
#pragma once

#include <vector>

#include "tessel/dsl/variant.hpp"
#include "tessel/op.hpp"

namespace tessel::tools {

// kernels::catalog(): every op, in a stable order.
const std::vector<op_entry>& ops();

// kernels::all_variants(): every kernel variant tessel ships.
const std::vector<const variant_info*>& variants();

// kernels::parameter_blocks(): every parameter block.
const std::vector<block_info>& parameter_blocks();

}  // namespace tessel::tools
