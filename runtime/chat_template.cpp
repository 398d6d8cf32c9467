#include "runtime/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/error.h"
#include "runtime/jinja_eval.h"

namespace fs = std::filesystem;

namespace tessera {

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UserError("cannot read " + path.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::ordered_json read_json(const fs::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw UserError(path.string() + ": invalid JSON: " + e.what());
  }
}

// A special token in tokenizer_config.json: "text" or {"content": "text", ...}.
bool special_token(const nlohmann::ordered_json& config, const char* key, std::string& out) {
  auto it = config.find(key);
  if (it == config.end()) return false;
  if (it->is_string()) {
    out = it->get<std::string>();
    return true;
  }
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    out = (*it)["content"].get<std::string>();
    return true;
  }
  return false;
}

}  // namespace

ChatTemplate ChatTemplate::from_string(std::string source) {
  ChatTemplate t;
  t.template_ = std::make_shared<const jinja::Template>(source);
  t.source_ = std::move(source);
  t.names_ = {"default"};
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::string& dir_or_file, const std::string& name) {
  fs::path path = dir_or_file;
  fs::path dir = path;
  if (fs::is_directory(path)) {
    path /= "tokenizer_config.json";
  } else {
    dir = path.parent_path();
  }
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
  if (fs::exists(path)) {
    config = read_json(path);
  } else if (!fs::exists(dir / "chat_template.jinja") && !fs::exists(dir / "chat_template.json")) {
    throw UserError("model has no chat_template: " + path.string() + " not found");
  }

  nlohmann::ordered_json tmpl = config.contains("chat_template") ? config["chat_template"]
                                                                 : nlohmann::ordered_json();
  if (tmpl.is_null() && fs::exists(dir / "chat_template.jinja")) {
    tmpl = read_text(dir / "chat_template.jinja");
  } else if (tmpl.is_null() && fs::exists(dir / "chat_template.json")) {
    auto j = read_json(dir / "chat_template.json");
    if (j.contains("chat_template")) tmpl = j["chat_template"];
  }

  std::vector<std::string> names;
  std::string source;
  if (tmpl.is_string()) {
    names = {"default"};
    if (name != "default")
      throw UserError("chat template '" + name + "' not found in " + path.string() + " (it has only 'default')");
    source = tmpl.get<std::string>();
  } else if (tmpl.is_array()) {
    bool found = false;
    for (auto& entry : tmpl) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string())
        throw UserError(path.string() + ": chat_template list entries need string 'name' and 'template'");
      names.push_back(entry["name"].get<std::string>());
      if (names.back() == name) {
        source = entry["template"].get<std::string>();
        found = true;
      }
    }
    if (!found) {
      std::string list;
      for (auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw UserError("chat template '" + name + "' not found in " + path.string() + " (it has: " + list + ")");
    }
  } else if (tmpl.is_null()) {
    throw UserError("model has no chat_template (" + path.string() +
                    " has none); use a plain prompt or pass a template");
  } else {
    throw UserError(path.string() + ": chat_template must be a string or a list");
  }

  ChatTemplate t = from_string(std::move(source));
  t.names_ = std::move(names);
  t.has_bos_ = special_token(config, "bos_token", t.bos_token_);
  t.has_eos_ = special_token(config, "eos_token", t.eos_token_);
  return t;
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra_context) const {
  require(messages.is_array(), "chat messages must be a JSON array");
  require(extra_context.is_null() || extra_context.is_object(), "chat template context must be a JSON object");
  jinja::Value ctx = jinja::Value::make_dict();
  ctx.dict->set("messages", jinja::from_json(messages));
  if (!tools.is_null()) ctx.dict->set("tools", jinja::from_json(tools));
  ctx.dict->set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  if (has_bos_) ctx.dict->set("bos_token", jinja::Value::string(bos_token_));
  if (has_eos_) ctx.dict->set("eos_token", jinja::Value::string(eos_token_));
  if (extra_context.is_object())
    for (auto it = extra_context.begin(); it != extra_context.end(); ++it)
      ctx.dict->set(it.key(), jinja::from_json(it.value()));
  return template_->render(ctx);
}

}  // namespace tessera
