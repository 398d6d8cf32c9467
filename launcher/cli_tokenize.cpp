// tessera tokenize: text -> token ids with a model's own tokenizer (DIR may hold only the
// tokenizer files).
#include <iostream>
#include <nlohmann/json.hpp>

#include "launcher/commands.h"
#include "runtime/error.h"
#include "runtime/tokenizer.h"

namespace tessera {
namespace {

struct TokenizeArgs {
  std::string model_dir, text;
  bool json = false, no_special = false;
};

int run_tokenize(const TokenizeArgs& a) {
  const Tokenizer tok = Tokenizer::from_dir(a.model_dir);
  const std::vector<int32_t> ids = tok.encode(a.text, !a.no_special);
  if (a.json) {
    nlohmann::json tokens = nlohmann::json::array();
    for (int32_t id : ids) tokens.push_back(tok.id_to_token(id));
    nlohmann::json j = {{"ids", ids}, {"tokens", tokens}};
    // Replace: a byte-level token string may not be valid UTF-8 on its own.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << std::endl;
  }
  return 0;
}

}  // namespace

CommandRunner register_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("--model", a->model_dir, "Directory with tokenizer.json")->required();
  cmd->add_option("text", a->text, "The text to tokenize")->required();
  cmd->add_flag("--json", a->json, "Print {\"ids\": [...], \"tokens\": [...]}");
  cmd->add_flag("--no-special-tokens", a->no_special, "Do not add bos/eos or template tokens");
  return [a] { return run_tokenize(*a); };
}

}  // namespace tessera
