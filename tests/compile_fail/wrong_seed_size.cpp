// Asserting a documented size that the block does not have fails to compile.
#include <cstdint>

#include "tessel/dsl/layout.hpp"

struct ReduceLike {
  std::uint32_t nrows;
  std::uint32_t extra;
};
TESSEL_PARAMS(ReduceLike, nrows, extra);

static_assert(tessel::layout<ReduceLike>::size == 4);
