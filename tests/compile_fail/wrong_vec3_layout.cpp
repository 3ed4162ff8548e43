// A host struct that packs a vec3 tightly: std430 aligns vec3 to 16 bytes, so
// `direction` sits at offset 16 on the GPU, 4 on the host, and `intensity`
// follows at 28 instead of 16. The check must name the block and the field.
#include "tessel/dsl/layout.hpp"

struct LightParams {
  float range;
  tessel::vec<float, 3> direction;
  float intensity;
};
TESSEL_PARAMS(LightParams, range, direction, intensity);

static_assert(tessel::layout<LightParams>::matches_host);
