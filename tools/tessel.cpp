// The `tessel` command-line program: dump generated GLSL, print parameter
// block layouts, list Vulkan devices, run an op on .npy files, run every
// op's demo cases against the reference, and benchmark the kernels.
//
// Exit status: 0 success; 1 a failure at run time (a shader that does not
// compile, a result outside tolerance, no device, validation messages);
// 2 a bad command line or bad input (nothing is run, nothing is written).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "tessel/cli/args.hpp"

namespace {

using tessel::cli::usage_error;

struct subcommand {
  std::string_view name;
  std::string_view summary;
  std::string_view usage;
  std::string_view details;
  std::vector<tessel::cli::option> options;
  std::size_t max_positional;
  std::function<int(const tessel::cli::parsed&)> run;
};

const std::vector<subcommand>& subcommands();

void print_help(const subcommand& s) {
  std::cout << "usage: tessel " << s.usage << "\n\n" << s.summary << "\n";
  if (!s.details.empty()) std::cout << "\n" << s.details << "\n";
  if (s.options.empty()) return;
  std::cout << "\noptions:\n";
  for (const auto& o : s.options) {
    std::string left = "  --" + std::string(o.name);
    if (!o.value_name.empty()) {
      left += ' ';
      left += o.value_name;
    }
    std::cout << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << o.help
              << (o.repeatable ? " (repeatable)" : "") << "\n";
  }
}

void print_overview() {
  std::cout << "usage: tessel <command> [options]\n\n"
               "tessel: GPU compute kernels described in C++ templates, run through Vulkan.\n\n"
               "commands:\n";
  for (const auto& s : subcommands())
    std::cout << "  " << s.name << std::string(10 - s.name.size(), ' ') << s.summary << "\n";
  std::cout << "  help      print this text, or `tessel help <command>`\n\n"
               "`tessel <command> --help` describes a command's options.\n"
               "Exit status: 0 success, 1 failure at run time, 2 bad command line or input.\n"
               "Environment: TESSEL_DEVICE picks the device (index or name substring);\n"
               "TESSEL_VALIDATION=1 enables the Khronos validation layer.\n";
}

const std::vector<subcommand>& subcommands() {
  using tessel::cli::option;
  static const std::vector<subcommand> list = {
      {"dump",
       "write the GLSL of every kernel variant for a target, with index.json",
       "dump --target NAME --out DIR [--kernel PATTERN] [--validate]",
       "Writes DIR/<variant>.comp for each variant that fits the target and DIR/index.json\n"
       "describing every variant (workgroup, shared memory, parameter block, bindings,\n"
       "specialization constants); variants that do not fit are listed there as skipped.\n"
       "Targets: the predefined ones (portable, nvidia) or `device`, the default Vulkan\n"
       "device's own. PATTERN is a glob over the whole variant name with * and ?; without\n"
       "either it matches any name containing it.",
       {{"target", "NAME", "portable, nvidia or device"},
        {"out", "DIR", "output directory (created if missing)"},
        {"kernel", "PATTERN", "only the variants whose name matches"},
        {"validate", "", "also compile each to SPIR-V and validate it; exit 1 on failure"},
        {"help", "", "print this text"}},
       0,
       tessel::cli::dump},
      {"layout",
       "print every parameter block's layout (size, alignment, field offsets)",
       "layout [--json]",
       "",
       {{"json", "", "print JSON instead of a table"}, {"help", "", "print this text"}},
       0,
       tessel::cli::layout},
      {"info",
       "list the Vulkan devices and their limits; mark the default one",
       "info",
       "The default device is the one TESSEL_DEVICE names (an index or a case-insensitive\n"
       "name substring), else the first discrete, integrated, virtual, then cpu device.",
       {{"help", "", "print this text"}},
       0,
       tessel::cli::info},
      {"run",
       "run one op on .npy inputs and write its outputs as .npy",
       "run OP --in NAME=FILE.npy ... [--param NAME=VALUE ...] [--out NAME=FILE.npy ...] "
       "[--check]\n       tessel run --list",
       "Inputs must have the op's element types (bf16 inputs are read from '<u2' bit\n"
       "patterns). Outputs are written only when the run succeeded, each through a\n"
       "temporary file. Parameters left out take their defaults (`run --list`).",
       {{"in", "NAME=FILE", "an input tensor", true},
        {"param", "NAME=VALUE", "a scalar parameter", true},
        {"out", "NAME=FILE", "write an output tensor", true},
        {"check", "", "compare with the reference; exit 1 outside tolerance"},
        {"list", "", "list every op with its inputs, parameters and outputs"},
        {"help", "", "print this text"}},
       1,
       tessel::cli::run},
      {"demo",
       "run every op's demo cases on the default device against the reference",
       "demo [--seed N] [--op PATTERN]",
       "Prints one row per case: error against the double-precision reference and the\n"
       "wall time of the op's run (upload, dispatch, download). Exits 1 if any case fails\n"
       "or, with TESSEL_VALIDATION=1, if the validation layer reported anything.\n"
       "PATTERN matches op names as in `dump --kernel`.",
       {{"seed", "N", "seed of the random inputs (default 1)"},
        {"op", "PATTERN", "only the ops whose name matches"},
        {"help", "", "print this text"}},
       0,
       tessel::cli::demo},
      {"bench",
       "time the kernels on the default device against its measured floor",
       "bench [SUITE ...] [--shape KERNEL:DIM=V,...] [--quick] [--reps N] [--out DIR]",
       "Suites: decode, prefill, tq, all (the default without --shape): the issue's\n"
       "benchmark shapes and a sweep of sequence lengths. Each shape: median and p10-p90\n"
       "of the GPU time per call (timestamp queries, after a warm-up, input sets rotated\n"
       "through 3x a 50 MB cache), bytes and FLOPs, GB/s and TFLOP/s, and the fraction of\n"
       "the floor: bytes at the measured copy bandwidth or FLOPs at the measured matrix\n"
       "rate, whichever takes longer. Writes DIR/bench.json, bench.csv and bench.svg.\n"
       "--shape dims left out keep the kernel's first shape, e.g.\n"
       "  tessel bench --shape decode_f16:L=8192,D=128",
       {{"shape", "KERNEL:DIM=V,...", "also time this shape", true},
        {"quick", "", "tiny shapes, 3 repetitions (a smoke test; runs on lavapipe)"},
        {"reps", "N", "at most N timed repetitions per shape (default 100)"},
        {"out", "DIR", "where the files go (default tessel-bench)"},
        {"help", "", "print this text"}},
       4,
       tessel::cli::bench},
  };
  return list;
}

int dispatch(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_overview();
    return 2;
  }
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    if (command == "help" && args.size() > 1) {
      for (const auto& s : subcommands())
        if (s.name == args[1]) {
          print_help(s);
          return 0;
        }
      throw usage_error("unknown command '" + args[1] + "'");
    }
    print_overview();
    return 0;
  }
  for (const auto& s : subcommands()) {
    if (s.name != command) continue;
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const auto& a : rest)
      if (a == "-h" || a == "--help") {
        print_help(s);
        return 0;
      }
    try {
      return s.run(tessel::cli::parse(rest, s.options, s.max_positional));
    } catch (const usage_error& e) {
      std::cerr << "tessel " << s.name << ": " << e.what() << "\n"
                << "usage: tessel " << s.usage << "\n"
                << "(`tessel " << s.name << " --help` for details)\n";
      return 2;
    }
  }
  throw usage_error("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const usage_error& e) {
    std::cerr << "tessel: " << e.what() << "\n(`tessel --help` lists the commands)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tessel: " << e.what() << "\n";
    return 1;
  }
}
