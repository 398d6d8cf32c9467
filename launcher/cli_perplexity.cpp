// tessera perplexity: how well the model (as loaded: stored, int8 or int4 weights) predicts a
// text, with the windowed protocol of runtime/perplexity.h. Prints the perplexity and the
// number of scored tokens; --json puts one object on the last line.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launcher/cli_parse.h"
#include "launcher/commands.h"
#include "launcher/model_loading.h"
#include "runtime/error.h"
#include "runtime/perplexity.h"
#include "runtime/tokenizer.h"

namespace tessera {
namespace {

struct PerplexityArgs {
  ModelArgs model;
  std::string text_file, ids_file;
  int64_t window = 0;
  CLI::Option* window_opt = nullptr;
  bool json = false;
};

constexpr int64_t kDefaultWindow = 1024;  // capped at max_position_embeddings

// The "ids" array of a JSON object (like the perplexity goldens) or a bare array of ids;
// the object's "window", when present, becomes the default window.
std::vector<int32_t> read_ids(const std::string& path, int64_t* window) {
  require(std::filesystem::is_regular_file(path), "--ids-json: cannot read " + path);
  std::ifstream f(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  if (j.is_object() && j.contains("window") && j["window"].is_number_integer())
    *window = j["window"].get<int64_t>();
  const nlohmann::json& ids = j.is_object() && j.contains("ids") ? j["ids"] : j;
  require(ids.is_array(), path + ": expected {\"ids\": [...]} or a list of token ids");
  std::vector<int32_t> out;
  for (const auto& v : ids) {
    require(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX,
            path + ": every id must be a non-negative integer, got " + v.dump());
    out.push_back(v.get<int32_t>());
  }
  require(!out.empty(), path + ": the ids list is empty");
  return out;
}

int run_perplexity(const PerplexityArgs& a) {
  require(a.text_file.empty() != a.ids_file.empty(), "give exactly one of --file or --ids-json");
  int64_t window = 0;
  std::vector<int32_t> ids;
  if (!a.ids_file.empty()) {
    ids = read_ids(a.ids_file, &window);
  } else {
    const std::string text = read_text_file(a.text_file, "--file");
    const std::string dir = a.model.model_dir;
    require(!dir.empty() && std::filesystem::exists(dir + "/tokenizer.json"),
            "--file needs the model's tokenizer.json (in --model DIR); use --ids-json");
    ids = Tokenizer::from_dir(dir).encode(text, true);
    require(!ids.empty(), a.text_file + " encodes to no tokens");
  }
  if (a.window_opt->count() > 0) window = a.window;
  require(ids.size() >= 2, "perplexity needs at least 2 tokens, got " +
                               std::to_string(ids.size()));
  require(a.window_opt->count() == 0 || window >= 2,
          "--window must be at least 2, got " + std::to_string(window));
  LoadedModel lm = load_model(a.model);
  if (window == 0)
    window = std::min<int64_t>(kDefaultWindow, lm.model->config().max_position_embeddings);
  const PerplexityResult r = evaluate_perplexity(*lm.model, ids, window);
  if (!lm.comm->world().is_root()) return 0;  // only rank 0 writes results
  if (a.json) {
    nlohmann::json j = {{"perplexity", r.perplexity()}, {"nll", r.total_nll},
                        {"scored_tokens", r.scored},    {"tokens", ids.size()},
                        {"windows", r.windows},         {"window", window},
                        {"weights", a.model.weights},   {"lm_head", a.model.lm_head},
                        {"embeddings", a.model.embeddings}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("perplexity %.4f over %lld scored tokens\n", r.perplexity(),
                (long long)r.scored);
    std::fprintf(stderr, "tessera: %zu tokens in %lld windows of %lld, weights %s, lm_head %s\n",
                 ids.size(), (long long)r.windows, (long long)window, a.model.weights.c_str(),
                 a.model.lm_head.c_str());
  }
  return 0;
}

}  // namespace

CommandRunner register_perplexity(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand(
      "perplexity", "Perplexity of a text: windows from an empty KV cache, all but the first "
                    "token of each scored");
  add_model_options(cmd, a->model);
  cmd->add_option("--file", a->text_file, "Text file, tokenized with the model's tokenizer");
  cmd->add_option("--ids-json", a->ids_file,
                  "JSON file with {\"ids\": [...]} (like the perplexity goldens; its \"window\" "
                  "is the default window) or a list of ids");
  a->window_opt = cmd->add_option(
      "--window", a->window,
      "Tokens per window (stride = window; default: the ids file's, else min(1024, "
      "max_position_embeddings))");
  cmd->add_flag("--json", a->json, "Print one JSON object on the last line");
  return [a] { return run_perplexity(*a); };
}

}  // namespace tessera
