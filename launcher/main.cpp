// The `tessera` binary: results on stdout, notices on stderr; a user's mistake exits 2 with
// a one-line message, anything else that fails exits 1.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "parallel/world_comm.h"
#include "runtime/error.h"

int main(int argc, char** argv) {
  CLI::App app{"tessera: LLM inference on CPUs and GPUs"};
  app.require_subcommand(1);
  std::map<std::string, tessera::CommandRunner> runners;
  runners["generate"] = tessera::register_generate(app);
  runners["bench"] = tessera::register_bench(app);
  runners["tokenize"] = tessera::register_tokenize(app);
  runners["serve"] = tessera::register_serve(app);
  runners["launch"] = tessera::register_launch(app);
  runners["plan"] = tessera::register_plan(app);
  runners["perplexity"] = tessera::register_perplexity(app);
  runners["quantize"] = tessera::register_quantize(app);
  std::vector<std::string> args(argv, argv + argc);
  try {
    args = tessera::expand_config(app, args);  // --config FILE: the preset's options
  } catch (const tessera::UserError& e) {
    std::fprintf(stderr, "tessera: error: %s\n", e.what());
    return 2;
  }
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  try {
    app.parse(int(cargs.size()), cargs.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "tessera: %s (see tessera --help)\n", e.what());
    return 2;
  }
  try {
    for (auto& [name, run] : runners)
      if (app.got_subcommand(name)) return run();
  } catch (const tessera::UserError& e) {
    std::fprintf(stderr, "tessera: error: %s\n", e.what());
    tessera::abort_job(2);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera: internal error: %s\n", e.what());
    tessera::abort_job(1);
    return 1;
  }
  return 1;
}
