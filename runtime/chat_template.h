// Chat templates: renders a model's `chat_template` (Jinja, from tokenizer_config.json) with
// chat messages the way Hugging Face's apply_chat_template(tokenize=False) does, with the
// environment settings transformers uses (trim_blocks=True, lstrip_blocks=True).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tessera {

namespace jinja {
class Template;
}

class ChatTemplate {
 public:
  // Loads the template from a model directory (its tokenizer_config.json, else
  // chat_template.jinja / chat_template.json next to it) or from a tokenizer_config.json
  // path. A config whose chat_template is a list of {name, template} picks `name`
  // ("default" unless given). Also reads bos_token / eos_token (string or {"content": ...}).
  // Throws UserError: "model has no chat_template ...", unknown name, syntax errors.
  static ChatTemplate from_tokenizer_config(const std::string& dir_or_file,
                                            const std::string& name = "default");
  // A template from its source text, without bos/eos tokens (pass them in extra_context).
  static ChatTemplate from_string(std::string source);

  // Renders the conversation. The template sees `messages`, `tools` (only when not null),
  // `add_generation_prompt`, `bos_token` / `eos_token` (when the config has them) and every
  // key of `extra_context` (an object; it overrides the others). Throws UserError on a
  // template error; raise_exception(msg) in the template throws UserError(msg).
  std::string render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                     bool add_generation_prompt,
                     const nlohmann::ordered_json& extra_context = {}) const;

  const std::string& source() const { return source_; }
  // Names of all templates in the config (["default"] for a single-string chat_template).
  const std::vector<std::string>& template_names() const { return names_; }
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::Template> template_;
  std::vector<std::string> names_;
  std::string bos_token_, eos_token_;
  bool has_bos_ = false, has_eos_ = false;
};

}  // namespace tessera
