// Dispatching with a buffer whose element type differs from the binding's
// declared type must not compile.
#include <cstdint>

#include "tessel/vk/recorder.hpp"

struct scale_kernel {
  static constexpr auto name = tessel::name("scale_kernel");
  using bindings = tessel::bindings<tessel::inout<"data", float>>;
  using workgroup = tessel::workgroup<64>;
  static constexpr std::string_view body = "void main() { data[0] *= 2.0; }\n";
};

void record(tessel::vk::recorder& rec, const tessel::vk::buffer<std::int32_t>& data) {
  rec.dispatch<scale_kernel>({}, tessel::extent3{1, 1, 1}, data);
}
