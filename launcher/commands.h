// The tessera subcommands. Each registers its options on the app and returns the function
// that runs it (after parsing), which returns the process exit code.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace tessera {

using CommandRunner = std::function<int()>;

CommandRunner register_generate(CLI::App& app);
CommandRunner register_bench(CLI::App& app);
CommandRunner register_tokenize(CLI::App& app);
CommandRunner register_serve(CLI::App& app);
CommandRunner register_launch(CLI::App& app);
CommandRunner register_plan(CLI::App& app);
CommandRunner register_perplexity(CLI::App& app);
CommandRunner register_quantize(CLI::App& app);

}  // namespace tessera
