// libFuzzer target: the .npy reader. Any byte string either throws
// tessel::error or parses into a tensor whose data hold exactly its shape's
// bytes and which writes and reads back unchanged; never another exception,
// a crash or a sanitizer report. tests/tools/data/*.npy seed the corpus.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "tessel/npy.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "tessel fuzz: npy: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::span<const std::byte> file(reinterpret_cast<const std::byte*>(bytes), size);
  for (const bool u16_as_bf16 : {false, true}) {
    tessel::tensor t;
    try {
      t = tessel::parse_npy(file, "fuzz.npy", {u16_as_bf16});
    } catch (const tessel::error&) {
      continue;
    }
    if (t.data.size() != t.elements() * tessel::kind_size(t.kind))
      fail("accepted a tensor whose data disagree with its shape");
    const tessel::tensor again =
        tessel::parse_npy(tessel::encode_npy(t), "round trip", {u16_as_bf16});
    if (again.kind != t.kind || again.shape != t.shape || again.data != t.data)
      fail("a parsed tensor does not survive writing and reading back");
  }
  return 0;
}
