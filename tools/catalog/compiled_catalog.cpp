#include "compiled_catalog.hpp"

#include "tessel/kernels/catalog.hpp"
#include "tessel/kernels/registry.hpp"

namespace tessel::tools {

const std::vector<op_entry>& ops() {
  return kernels::catalog();
}

const std::vector<const variant_info*>& variants() {
  static const std::vector<const variant_info*> all = kernels::all_variants();
  return all;
}

const std::vector<block_info>& parameter_blocks() {
  static const std::vector<block_info> all = kernels::parameter_blocks();
  return all;
}

}  // namespace tessel::tools
