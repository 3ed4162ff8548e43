// The subcommands of the `tessel` program, one translation unit each. Each
// returns the exit status, throws cli::usage_error for a bad command line
// (status 2) and lets other exceptions reach main (status 1).
#pragma once

#include "tessel/cli/args.hpp"

namespace tessel::cli {

int dump(const parsed& args);
int layout(const parsed& args);
int info(const parsed& args);
int run(const parsed& args);
int demo(const parsed& args);
int bench(const parsed& args);

}  // namespace tessel::cli
