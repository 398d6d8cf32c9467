// tessera launch --tp N -- <command ...>: prints and execs the equivalent mpirun command
// line, one rank per GPU (or CPU share). Adds OpenMPI's --allow-run-as-root only when run
// as root and --oversubscribe only when N exceeds the online cores.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "launcher/commands.h"
#include "runtime/error.h"

namespace tessera {
namespace {

struct LaunchArgs {
  int tp = 0;
  std::string mpirun = "mpirun";
  bool dry_run = false;
  std::vector<std::string> command;
};

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  require(n > 0, "cannot find the tessera binary (/proc/self/exe)");
  return std::string(buf, size_t(n));
}

std::string quoted(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \t\n'\"\\$`*?&;|<>()[]{}!#~") == std::string::npos)
    return s;
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

int run_launch(const LaunchArgs& a) {
  require(a.tp >= 1, "launch: --tp must be at least 1");
  require(!a.command.empty(), "launch: give the command after --, e.g. "
                              "`tessera launch --tp 2 -- serve --model DIR`");
  const std::string& sub = a.command[0];
  require(sub == "serve" || sub == "generate" || sub == "bench",
          "launch: \"" + sub + "\" does not run tensor parallel; use serve, generate or bench");
  std::vector<std::string> argv = {a.mpirun, "-np", std::to_string(a.tp)};
  if (geteuid() == 0) argv.push_back("--allow-run-as-root");
  if (a.tp > sysconf(_SC_NPROCESSORS_ONLN)) argv.push_back("--oversubscribe");
  argv.push_back(self_exe());
  bool has_tp = false;
  for (const std::string& s : a.command) {
    has_tp = has_tp || s == "--tp" || s.rfind("--tp=", 0) == 0;
    argv.push_back(s);
  }
  if (!has_tp) {
    argv.push_back("--tp");
    argv.push_back(std::to_string(a.tp));
  }
  std::string line;
  for (const std::string& s : argv) line += (line.empty() ? "" : " ") + quoted(s);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  if (a.dry_run) return 0;
  std::vector<char*> cargv;
  for (std::string& s : argv) cargv.push_back(s.data());
  cargv.push_back(nullptr);
  execvp(cargv[0], cargv.data());
  throw UserError("launch: cannot run " + a.mpirun + ": " + std::strerror(errno) +
                  " (install openmpi-bin, or pass --mpirun PATH)");
}

}  // namespace

CommandRunner register_launch(CLI::App& app) {
  auto a = std::make_shared<LaunchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "launch", "Start a tensor-parallel job: tessera launch --tp N -- serve --model DIR ...");
  cmd->add_option("--tp", a->tp, "Number of ranks (one per GPU)")->required();
  cmd->add_option("--mpirun", a->mpirun, "The mpirun to use (default: mpirun on PATH)");
  cmd->add_flag("--dry-run", a->dry_run, "Print the mpirun command line without running it");
  cmd->add_option("command", a->command, "The tessera command and its options, after --");
  return [a] { return run_launch(*a); };
}

}  // namespace tessera
