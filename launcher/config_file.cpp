#include "launcher/config_file.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace tessera {
namespace {

using ojson = nlohmann::ordered_json;

const CLI::Option* find_long_option(const CLI::App* cmd, const std::string& key) {
  for (const CLI::Option* opt : cmd->get_options()) {
    const auto& names = opt->get_lnames();
    if (std::find(names.begin(), names.end(), key) != names.end()) return opt;
  }
  return nullptr;
}

// Whether the command line (after the subcommand, before a bare "--") gives `opt` by any of
// its names: --name, --name=VALUE, -n, -nVALUE.
bool given(const CLI::Option* opt, const std::vector<std::string>& args, size_t from) {
  for (size_t i = from; i < args.size() && args[i] != "--"; ++i) {
    const std::string& a = args[i];
    for (const std::string& l : opt->get_lnames())
      if (a == "--" + l || a.rfind("--" + l + "=", 0) == 0) return true;
    for (const std::string& s : opt->get_snames())
      if (a.size() >= 2 && a[0] == '-' && a[1] != '-' && a.compare(1, s.size(), s) == 0)
        return true;
  }
  return false;
}

// The --config FILE of the command line, or "" (error when given twice or without a value).
std::string config_path(const std::vector<std::string>& args, size_t from) {
  std::string path;
  int count = 0;
  for (size_t i = from; i < args.size() && args[i] != "--"; ++i) {
    if (args[i] == "--config") {
      require(i + 1 < args.size(), "--config needs a FILE");
      path = args[++i], ++count;
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9), ++count;
    }
  }
  require(count <= 1, "--config may be given once");
  return path;
}

ojson read_config(const std::string& path) {
  std::ifstream f(path);
  require(bool(f), "cannot read --config file " + path);
  ojson j;
  try {
    j = ojson::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  require(j.is_object(), path + ": expected a JSON object of option names and values");
  return j;
}

// The command-line words for one key: {"--key", "value"}, {"--key"} or {}.
std::vector<std::string> words_for(const std::string& path, const std::string& key,
                                   const ojson& v, bool flag) {
  const std::string where = path + ": \"" + key + "\"";
  if (flag) {
    require(v.is_boolean(), where + " is a flag: give true or false");
    return v.get<bool>() ? std::vector<std::string>{"--" + key} : std::vector<std::string>{};
  }
  if (v.is_string()) return {"--" + key, v.get<std::string>()};
  require(v.is_number(), where + " needs a string or a number");
  return {"--" + key, v.dump()};
}

// Only rank 0 writes notices (mpirun starts every rank with the same flags).
bool is_root_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK"})
    if (const char* r = std::getenv(var)) return std::string(r) == "0";
  return true;
}

}  // namespace

void add_config_option(CLI::App* cmd) {
  cmd->add_option("--config", "JSON preset of options (configs/*.json); flags given on the "
                              "command line override it");
}

std::vector<std::string> expand_config(const CLI::App& app, const std::vector<std::string>& args) {
  const std::vector<const CLI::App*> commands =
      app.get_subcommands([](const CLI::App*) { return true; });
  const CLI::App* cmd = nullptr;
  size_t at = 1;
  for (; at < args.size() && !cmd; ++at)
    for (const CLI::App* c : commands)
      if (c->get_name() == args[at]) cmd = c;
  if (!cmd || !find_long_option(cmd, "config")) return args;
  const std::string path = config_path(args, at);
  if (path.empty()) return args;

  const ojson j = read_config(path);
  std::vector<std::string> added, skipped;
  for (const auto& [key, value] : j.items()) {
    if (key == "description") continue;
    require(key != "config", path + ": \"config\" cannot name another preset");
    if (const CLI::Option* opt = find_long_option(cmd, key)) {
      if (given(opt, args, at)) continue;  // the command line wins
      for (std::string& w : words_for(path, key, value, opt->get_expected_max() == 0))
        added.push_back(std::move(w));
      continue;
    }
    bool known = false;
    for (const CLI::App* c : commands) known |= find_long_option(c, key) != nullptr;
    require(known, path + ": unknown key \"" + key + "\" (no tessera command has --" + key + ")");
    skipped.push_back(key);
  }
  if (!skipped.empty() && is_root_rank()) {
    std::string list;
    for (const std::string& k : skipped) list += (list.empty() ? "" : ", ") + k;
    std::fprintf(stderr, "notice: %s: not used by %s: %s\n", path.c_str(),
                 cmd->get_name().c_str(), list.c_str());
  }
  std::vector<std::string> out(args.begin(), args.begin() + long(at));
  out.insert(out.end(), added.begin(), added.end());
  out.insert(out.end(), args.begin() + long(at), args.end());
  return out;
}

}  // namespace tessera
