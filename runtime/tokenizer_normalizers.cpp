// Normalizers: NFC/NFD/NFKC/NFKD, Lowercase, Prepend, Replace, Strip, Sequence.
#include <algorithm>
#include <limits>

#include "runtime/error.h"
#include "runtime/tokenizer_components.h"
#include "runtime/tokenizer_regex.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera::tok {

[[noreturn]] void unsupported(const std::string& kind, const json& j) {
  std::string type = j.is_object() && j.contains("type") && j["type"].is_string()
                         ? j["type"].get<std::string>()
                         : j.dump();
  throw UserError("tokenizer.json: unsupported " + kind + " type \"" + type + "\"");
}

std::string component_type(const std::string& kind, const json& j) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw UserError("tokenizer.json: " + kind + " without a \"type\": " + j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

int32_t token_id(const json& v, int64_t limit, const std::string& what) {
  limit = std::min<int64_t>(limit, std::numeric_limits<int32_t>::max());
  // get<int64_t> wraps unsigned values above INT64_MAX to negative ones: rejected too.
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= limit)
    throw UserError("tokenizer.json: the id of " + what + " is " + v.dump() +
                    ", not an id in [0, " + std::to_string(limit) + ")");
  return int32_t(v.get<int64_t>());
}

Regex make_pattern(const json& pattern, const std::string& what) {
  if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
    return Regex::literal(pattern["String"].get<std::string>(), what);
  if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
    return Regex(pattern["Regex"].get<std::string>(), what);
  throw UserError("tokenizer.json: " + what + ": unsupported pattern " + pattern.dump());
}

namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(std::string form) : form_(std::move(form)) {}
  std::string normalize(std::string text) const override { return unicode_normalize(text, form_); }

 private:
  std::string form_;
};

class Lowercase : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode_lowercase(text); }
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string p) : prepend_(std::move(p)) {}
  // HF prepends only to non-empty text (the tokenizer never normalizes an empty section).
  std::string normalize(std::string text) const override {
    return text.empty() ? text : prepend_ + text;
  }

 private:
  std::string prepend_;
};

class Replace : public Normalizer {
 public:
  Replace(const json& j)
      : pattern_(make_pattern(j.at("pattern"), "normalizer Replace")),
        content_(j.value("content", "")) {}
  std::string normalize(std::string text) const override {
    return pattern_.replace_all(text, content_);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text) const override {
    std::string_view v = text;
    if (left_) v = trim_start(v);
    if (right_) v = trim_end(v);
    return std::string(v);
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string normalize(std::string text) const override {
    for (auto& p : parts_) text = p->normalize(std::move(text));
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = component_type("normalizer", j);
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD")
    return std::make_unique<UnicodeForm>(type);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Prepend") return std::make_unique<Prepend>(j.value("prepend", ""));
  if (type == "Replace") return std::make_unique<Replace>(j);
  if (type == "Strip")
    return std::make_unique<Strip>(j.value("strip_left", false), j.value("strip_right", false));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (auto& n : j.at("normalizers"))
      if (auto p = make_normalizer(n)) parts.push_back(std::move(p));
    return std::make_unique<Sequence>(std::move(parts));
  }
  unsupported("normalizer", j);
}

}  // namespace tessera::tok
