// Loading tokenizer.json and running the encode / decode pipelines.
#include "runtime/tokenizer.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "runtime/error.h"
#include "runtime/tokenizer_added_tokens.h"
#include "runtime/tokenizer_bpe.h"
#include "runtime/tokenizer_components.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera {
namespace tok {

struct TokenizerImpl {
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;

  std::vector<AddedToken> added;
  std::unordered_map<int32_t, int> added_by_id;            // id -> index in `added`
  std::unordered_map<std::string, int> added_by_text;      // content and normalized content
  std::unordered_set<std::string> added_contents;          // for the ByteLevel decoder
  AddedTokenSplitter raw_splitter, normalized_splitter;
  std::unordered_set<int32_t> special_ids;
  int64_t vocab_size = 0;
  std::string bos, eos;
  bool cleanup = true;

  std::optional<int32_t> lookup(const std::string& t) const {
    auto it = added_by_text.find(t);
    if (it != added_by_text.end() && added[it->second].content == t) return added[it->second].id;
    return model->token_to_id(t);
  }
  const std::string* token_of(int32_t id) const {
    auto it = added_by_id.find(id);
    if (it != added_by_id.end()) return &added[it->second].content;
    return model->id_to_token(id);
  }
  void encode_section(const std::string& text, int section_index, std::vector<int32_t>& ids) const;
};

namespace {

json parse_json(const std::string& text, const std::string& what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw UserError(what + ": invalid JSON: " + e.what());
  }
}

// tokenizer_config.json writes special tokens as "text" or {"content": "text", ...}.
std::string config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

std::shared_ptr<TokenizerImpl> build(const json& tj, const json& cfg) {
  auto impl = std::make_shared<TokenizerImpl>();
  if (!tj.is_object() || !tj.contains("model"))
    throw UserError("tokenizer.json: no \"model\" section");
  std::string model_type = component_type("model", tj["model"]);
  if (model_type != "BPE") unsupported("model", tj["model"]);
  impl->model = std::make_unique<BpeModel>(tj["model"]);
  auto section = [&](const char* k) { return tj.contains(k) ? tj[k] : json(); };
  impl->normalizer = make_normalizer(section("normalizer"));
  impl->pre_tokenizer = make_pre_tokenizer(section("pre_tokenizer"));
  impl->vocab_size = impl->model->size();

  const json added = section("added_tokens").is_array() ? section("added_tokens") : json::array();
  // Added tokens' ids follow the model's; a generous bound on both (tok::token_id).
  const int64_t id_limit = 4 * (impl->vocab_size + int64_t(added.size())) + 1024;
  for (const auto& a : added) {
    AddedToken t;
    t.content = a.at("content").get<std::string>();
    t.id = token_id(a.at("id"), id_limit, "added token \"" + t.content + "\"");
    t.special = a.value("special", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    t.normalized = a.value("normalized", !t.special);
    impl->added.push_back(t);
  }
  std::vector<std::pair<std::string, int>> raw, norm;
  for (int i = 0; i < static_cast<int>(impl->added.size()); ++i) {
    const AddedToken& t = impl->added[i];
    impl->added_by_id[t.id] = i;
    impl->added_by_text.emplace(t.content, i);
    impl->added_contents.insert(t.content);
    if (t.special) impl->special_ids.insert(t.id);
    impl->vocab_size = std::max<int64_t>(impl->vocab_size, int64_t{t.id} + 1);
    // A normalized token is looked for in normalized text, so its content is normalized too
    // (for Llama, "<s>" becomes "▁<s>").
    if (t.normalized && impl->normalizer) {
      std::string n = impl->normalizer->normalize(t.content);
      impl->added_by_text.emplace(n, i);
      norm.emplace_back(n, i);
    } else {
      raw.emplace_back(t.content, i);
    }
  }
  impl->raw_splitter.build(raw, &impl->added);
  impl->normalized_splitter.build(norm, &impl->added);

  TokenLookup lookup = [p = impl.get()](const std::string& s) { return p->lookup(s); };
  impl->post_processor = make_post_processor(section("post_processor"), lookup);
  impl->decoder = make_decoder(section("decoder"), &impl->added_contents);

  if (cfg.is_object()) {
    impl->bos = config_token(cfg, "bos_token");
    impl->eos = config_token(cfg, "eos_token");
    impl->cleanup = cfg.value("clean_up_tokenization_spaces", true);
    if (cfg.contains("additional_special_tokens") && cfg["additional_special_tokens"].is_array())
      for (const auto& s : cfg["additional_special_tokens"]) {
        std::string name = s.is_string() ? s.get<std::string>() : s.value("content", "");
        if (auto id = impl->lookup(name)) impl->special_ids.insert(*id);
      }
    // Llama-style configs without a post-processor in tokenizer.json: transformers adds bos/eos
    // from add_bos_token / add_eos_token.
    if (!impl->post_processor) {
      bool add_bos = cfg.value("add_bos_token", false), add_eos = cfg.value("add_eos_token", false);
      std::optional<int32_t> bos, eos;
      if (add_bos) bos = impl->lookup(impl->bos);
      if (add_eos) eos = impl->lookup(impl->eos);
      require(!add_bos || bos, "tokenizer_config.json: add_bos_token but bos_token is not a token");
      require(!add_eos || eos, "tokenizer_config.json: add_eos_token but eos_token is not a token");
      if (bos || eos) impl->post_processor = make_bos_eos_processor(bos, eos);
    }
  }
  return impl;
}

// transformers' clean_up_tokenization: undo the spaces old tokenizers put before punctuation.
std::string clean_up(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) {
    std::string out;
    std::string_view f = from;
    size_t prev = 0;
    for (size_t p = s.find(f); p != std::string::npos; p = s.find(f, prev)) {
      out.append(s, prev, p - prev);
      out += to;
      prev = p + f.size();
    }
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }
  return s;
}

}  // namespace

void TokenizerImpl::encode_section(const std::string& text, int section_index,
                                   std::vector<int32_t>& ids) const {
  std::vector<std::string> pieces{text};
  if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces, section_index);
  for (const auto& p : pieces) model->encode_word(p, ids);
}

}  // namespace tok

using tok::TokenizerImpl;

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& config_json) {
  tok::json tj = tok::parse_json(tokenizer_json, "tokenizer.json");
  tok::json cfg = config_json.empty() ? tok::json::object()
                                      : tok::parse_json(config_json, "tokenizer_config.json");
  try {
    return Tokenizer(tok::build(tj, cfg));
  } catch (const tok::json::exception& e) {
    throw UserError(std::string("tokenizer.json: unexpected structure: ") + e.what());
  }
}

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  auto read = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw UserError("cannot read " + p.string());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  fs::path tj = fs::path(dir) / "tokenizer.json", cfg = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(tj)) throw UserError(tj.string() + ": not found (a tokenizer.json is needed)");
  std::string tjs = read(tj), cfgs = fs::exists(cfg) ? read(cfg) : std::string();
  try {
    return from_json(tjs, cfgs);
  } catch (const UserError& e) {
    // Name the file's full path, not just its base name.
    std::string msg = e.what();
    if (msg.rfind("tokenizer.json", 0) == 0) msg = tj.string() + msg.substr(14);
    else if (msg.rfind("tokenizer_config.json", 0) == 0) msg = cfg.string() + msg.substr(21);
    throw UserError(msg);
  }
}

std::vector<int32_t> Tokenizer::encode(const std::string& input, bool add_special_tokens) const {
  const TokenizerImpl& t = *impl_;
  std::string text = tok::sanitize_utf8(input);
  std::vector<int32_t> ids;
  // 1. Tokens matched in the raw text; a whole section equal to any added token is that token.
  std::vector<tok::Section> sections = t.raw_splitter.split(text);
  for (auto& s : sections) {
    auto it = t.added_by_text.find(s.text);
    if (s.token < 0 && it != t.added_by_text.end()) s.token = it->second;
  }
  tok::apply_strip_flags(sections, t.added);
  for (int si = 0; si < static_cast<int>(sections.size()); ++si) {
    const tok::Section& s = sections[si];
    if (s.token >= 0) {
      ids.push_back(t.added[s.token].id);
      continue;
    }
    if (s.text.empty()) continue;
    // 2. Normalize, then look for the normalized tokens in the normalized text.
    std::string normalized = t.normalizer ? t.normalizer->normalize(s.text) : s.text;
    if (normalized.empty()) continue;
    std::vector<tok::Section> subs = t.normalized_splitter.split(normalized);
    for (auto& sub : subs) {
      auto it = t.added_by_text.find(sub.text);
      if (sub.token < 0 && it != t.added_by_text.end()) sub.token = it->second;
    }
    tok::apply_strip_flags(subs, t.added);
    for (const auto& sub : subs) {
      if (sub.token >= 0) ids.push_back(t.added[sub.token].id);
      else if (!sub.text.empty()) t.encode_section(sub.text, si, ids);
    }
  }
  if (t.post_processor) t.post_processor->process(ids, add_special_tokens);
  return ids;
}

std::string Tokenizer::decode_raw(const std::vector<int32_t>& ids, bool skip_special) const {
  const TokenizerImpl& t = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* s = t.token_of(id);
    if (!s)
      throw UserError("cannot decode token id " + std::to_string(id) + ": outside the vocabulary (" +
                      std::to_string(t.vocab_size) + " tokens)");
    if (skip_special && t.special_ids.count(id)) continue;
    tokens.push_back(*s);
  }
  std::string out;
  if (t.decoder) {
    t.decoder->decode_chain(tokens);
    for (auto& s : tokens) out += s;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
  }
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string s = decode_raw(ids, skip_special);
  return impl_->cleanup ? tok::clean_up(std::move(s)) : s;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const std::string* s = impl_->token_of(id);
  if (!s) throw UserError("token id " + std::to_string(id) + " is outside the vocabulary");
  return *s;
}

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
  return impl_->lookup(token);
}
int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
std::optional<int32_t> Tokenizer::bos_id() const {
  return impl_->bos.empty() ? std::nullopt : impl_->lookup(impl_->bos);
}
std::optional<int32_t> Tokenizer::eos_id() const {
  return impl_->eos.empty() ? std::nullopt : impl_->lookup(impl_->eos);
}
std::string Tokenizer::bos_token() const { return impl_->bos; }
std::string Tokenizer::eos_token() const { return impl_->eos; }
bool Tokenizer::is_special(int32_t id) const { return impl_->special_ids.count(id) > 0; }
bool Tokenizer::clean_up_tokenization_spaces() const { return impl_->cleanup; }

std::string clean_up_tokenization(std::string s) { return tok::clean_up(std::move(s)); }

}  // namespace tessera
