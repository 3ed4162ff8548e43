// An int64 field makes the host struct 16 bytes (8-byte alignment) while the
// reflection lists only the first field: the sizes disagree.
#include <cstdint>

#include "tessel/dsl/layout.hpp"

struct PaddedParams {
  std::uint32_t count;
  std::int64_t stride;
};
TESSEL_PARAMS(PaddedParams, count);

static_assert(tessel::layout<PaddedParams>::matches_host);
