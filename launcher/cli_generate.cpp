// tessera generate: one prompt in, generated tokens out.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "launcher/cli_parse.h"
#include "launcher/commands.h"
#include "launcher/config_file.h"
#include "launcher/model_loading.h"
#include "launcher/rank_memory.h"
#include "runtime/error.h"
#include "runtime/chat_template.h"
#include "runtime/generator.h"
#include "runtime/tokenizer.h"

namespace tessera {
namespace {

struct GenerateArgs {
  ModelArgs model;
  std::string prompt_ids, prompt, messages_file;
  bool chat = false, no_echo = false;
  int64_t max_tokens = 64;
  float temperature = 0.8f, top_p = 1.0f;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool ignore_eos = false, json = false;
};

std::vector<int32_t> parse_ids(const std::string& s) {
  require(s.empty() || s.back() != ',', "--prompt-ids: trailing comma in \"" + s + "\"");
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const std::optional<long long> v = parse_integer(item);
    require(v && *v >= INT32_MIN && *v <= INT32_MAX,
            "--prompt-ids: \"" + item + "\" is not an integer token id");
    ids.push_back(int32_t(*v));
  }
  require(!ids.empty(), "--prompt-ids is empty");
  return ids;
}

// The conversation for --chat (one user message) or --messages FILE.
nlohmann::ordered_json chat_messages(const GenerateArgs& a) {
  if (a.messages_file.empty())
    return nlohmann::ordered_json::array({{{"role", "user"}, {"content", a.prompt}}});
  std::ifstream f(a.messages_file);
  require(bool(f), "cannot read --messages file " + a.messages_file);
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw UserError(a.messages_file + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  require(j.is_array() && !j.empty(),
          a.messages_file + ": expected a non-empty list of {\"role\", \"content\"} messages");
  for (const auto& m : j)
    require(m.is_object() && m.contains("role") && m["role"].is_string(),
            a.messages_file + ": every message needs a string \"role\"");
  return j;
}

int run_generate(const GenerateArgs& a) {
  require(std::isfinite(a.temperature) && std::isfinite(a.top_p),
          "--temperature and --top-p must be finite numbers");
  const int sources = !a.prompt_ids.empty() + !a.prompt.empty() + !a.messages_file.empty();
  require(sources == 1, "give exactly one of --prompt-ids, --prompt or --messages");
  require(!a.chat || a.prompt_ids.empty(), "--chat needs --prompt TEXT, not --prompt-ids");
  const bool chat = a.chat || !a.messages_file.empty();
  const std::string model_dir = a.model.model_dir;
  std::optional<Tokenizer> tok;
  if (!model_dir.empty() && std::filesystem::exists(model_dir + "/tokenizer.json"))
    tok = Tokenizer::from_dir(model_dir);
  std::vector<int32_t> prompt;
  if (!a.prompt_ids.empty()) {
    prompt = parse_ids(a.prompt_ids);
  } else {
    require(tok.has_value(), "--prompt needs the model's tokenizer.json, which " +
                                 (model_dir.empty() ? std::string("--model DIR") : model_dir) +
                                 " does not have; use --prompt-ids");
    if (chat) {
      const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(model_dir);
      const std::string text = tmpl.render(chat_messages(a), nullptr, true);
      prompt = tok->encode(text, false);  // the template already holds the special tokens
    } else {
      prompt = tok->encode(a.prompt, true);
    }
    require(!prompt.empty(), "the prompt encodes to no tokens");
  }
  LoadedModel lm = load_model(a.model);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling.temperature = a.temperature;
  opt.sampling.top_p = a.top_p;
  opt.sampling.top_k = a.top_k;
  opt.seed = a.seed;
  opt.ignore_eos = a.ignore_eos;
  // Text mode streams the continuation as it is generated (UTF-8 safe), after the prompt.
  const bool root = lm.comm->world().is_root();  // only rank 0 writes results
  std::optional<IncrementalDecoder> stream;
  if (root && !a.json && tok) {
    stream.emplace(*tok, true);
    if (!a.prompt.empty() && !chat && !a.no_echo) std::cout << a.prompt << std::flush;
  }
  auto on_token = [&](int32_t id) {
    if (stream) std::cout << stream->push(id) << std::flush;
  };
  GenerateResult r = generate(*lm.model, prompt, opt, on_token);
  const std::vector<RankMemory> memory = gather_rank_memory(*lm.comm, lm.model->weights());
  if (!root) return 0;
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
    j["text"] = tok ? tok->decode(r.ids, true) : "";
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens_per_s"] = decode_tps;
    j["memory_per_rank"] = rank_memory_json(memory);
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else if (stream) {
    std::cout << stream->flush() << std::endl;
    std::fprintf(stderr, "tessera: %zu prompt tokens, %zu generated\n", prompt.size(),
                 r.ids.size());
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
  add_config_option(cmd);
  cmd->add_option("--prompt-ids", a->prompt_ids, "Comma-separated prompt token ids");
  cmd->add_option("--prompt", a->prompt, "Prompt text");
  cmd->add_flag("--chat", a->chat, "Send --prompt as one user message through the chat template");
  cmd->add_option("--messages", a->messages_file,
                  "JSON file with a list of chat messages ({role, content})");
  cmd->add_flag("--no-echo", a->no_echo, "Do not print the prompt before the continuation");
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
