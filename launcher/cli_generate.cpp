// tessera generate: one prompt in, generated tokens out.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launcher/commands.h"
#include "launcher/model_loading.h"
#include "runtime/error.h"
#include "runtime/generator.h"

namespace tessera {
namespace {

struct GenerateArgs {
  ModelArgs model;
  std::string prompt_ids, prompt;
  int64_t max_tokens = 64;
  float temperature = 0.8f, top_p = 1.0f;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool ignore_eos = false, json = false;
};

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == item.size() && !item.empty() && v >= INT32_MIN && v <= INT32_MAX,
            "--prompt-ids: \"" + item + "\" is not an integer token id");
    ids.push_back(int32_t(v));
  }
  require(!ids.empty(), "--prompt-ids is empty");
  return ids;
}

int run_generate(const GenerateArgs& a) {
  require(!a.prompt_ids.empty() || !a.prompt.empty(), "give --prompt-ids or --prompt");
  require(a.prompt.empty(), "--prompt needs the tokenizer, which is not built yet: use "
                            "--prompt-ids");
  const std::vector<int32_t> prompt = parse_ids(a.prompt_ids);
  LoadedModel lm = load_model(a.model);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling.temperature = a.temperature;
  opt.sampling.top_p = a.top_p;
  opt.sampling.top_k = a.top_k;
  opt.seed = a.seed;
  opt.ignore_eos = a.ignore_eos;
  GenerateResult r = generate(*lm.model, prompt, opt);
  if (r.stopped_at_context)
    std::fprintf(stderr, "tessera: stopped at max_position_embeddings (%lld)\n",
                 (long long)lm.model->config().max_position_embeddings);
  const double prefill_tps = r.prefill_seconds > 0 ? double(prompt.size()) / r.prefill_seconds : 0;
  const double decode_tps =
      r.decode_seconds > 0 && r.ids.size() > 1 ? double(r.ids.size() - 1) / r.decode_seconds : 0;
  if (a.json) {
    nlohmann::json j;
    j["prompt_ids"] = prompt;
    j["ids"] = r.ids;
    j["text"] = "";
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    std::cout << j.dump() << std::endl;
  } else {
    for (size_t i = 0; i < r.ids.size(); ++i) std::cout << (i ? " " : "") << r.ids[i];
    std::cout << std::endl;
    std::fprintf(stderr, "tessera: prefill %.1f tok/s, decode %.1f tok/s\n", prefill_tps,
                 decode_tps);
  }
  return 0;
}

}  // namespace

CommandRunner register_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  add_model_options(cmd, a->model);
  cmd->add_option("--prompt-ids", a->prompt_ids, "Comma-separated prompt token ids");
  cmd->add_option("--prompt", a->prompt, "Prompt text");
  cmd->add_option("--max-tokens", a->max_tokens, "Tokens to generate")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", a->temperature, "0: greedy")->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-p", a->top_p, "Nucleus sampling mass (0, 1]")
      ->check(CLI::Range(1e-6, 1.0));
  cmd->add_option("--top-k", a->top_k, "Keep the k most likely tokens (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", a->seed, "Random seed");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the end-of-sequence token");
  cmd->add_flag("--json", a->json, "Print one JSON object on the last line");
  return [a] { return run_generate(*a); };
}

}  // namespace tessera
