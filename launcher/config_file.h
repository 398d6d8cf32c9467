// --config FILE: a JSON preset of options (configs/*.json) shared by serve, generate, plan
// and bench. Keys are long option names without the dashes ("gpu", "tp", "kv-cache", ...)
// plus "description". Presets are shared by commands, so a key that belongs to another
// tessera command is skipped (with a notice); a key that no command knows is an error.
#pragma once
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace tessera {

// Registers --config on a subcommand so that CLI11 accepts it (expand_config did the work).
void add_config_option(CLI::App* cmd);

// Returns `args` (argv, program name first) with the options of the --config file added
// after the subcommand's name: for each key whose option the chosen subcommand has and that
// the command line does not give, "--key value" (true booleans: "--key"; false: nothing).
// Flags on the command line override the file. Unchanged when there is no --config.
// Throws UserError for a missing or unreadable file, bad JSON, an unknown key or a value of
// the wrong kind.
std::vector<std::string> expand_config(const CLI::App& app, const std::vector<std::string>& args);

}  // namespace tessera
