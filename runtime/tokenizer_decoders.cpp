// Decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence) and
// post-processors (TemplateProcessing, ByteLevel, Sequence).
#include "runtime/error.h"
#include "runtime/tokenizer_components.h"
#include "runtime/tokenizer_regex.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera::tok {

namespace {

class ByteLevelDecoder : public Decoder {
 public:
  explicit ByteLevelDecoder(const std::unordered_set<std::string>* added) : added_(added) {}
  // Runs of ordinary tokens are mapped back to bytes and decoded as UTF-8 (ill-formed bytes
  // become U+FFFD); added tokens are text already and pass through unchanged.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    bool have_run = false;
    auto flush = [&] {
      if (have_run) out.push_back(sanitize_utf8(bytes));
      bytes.clear();
      have_run = false;
    };
    for (auto& t : tokens) {
      if (added_ && added_->count(t)) {
        flush();
        out.push_back(t);
        continue;
      }
      have_run = true;
      for (size_t i = 0; i < t.size();) {
        size_t start = i;
        int b = unicode_to_byte(next_code_point(t, i));
        if (b >= 0) bytes += static_cast<char>(b);
        else bytes.append(t, start, i - start);  // not a byte-level char: keep it as text
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  const std::unordered_set<std::string>* added_;
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const json& j)
      : pattern_(make_pattern(j.at("pattern"), "decoder Replace")), content_(j.value("content", "")) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Regex pattern_;
  std::string content_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  // Consecutive "<0xXX>" tokens are joined into bytes and decoded as UTF-8 (ill-formed parts
  // become U+FFFD, as JavaScript's TextDecoder does).
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    for (auto& t : tokens) {
      int b = parse_byte(t);
      if (b >= 0) {
        bytes += static_cast<char>(b);
        continue;
      }
      if (!bytes.empty()) out.push_back(sanitize_utf8(bytes)), bytes.clear();
      out.push_back(std::move(t));
    }
    if (!bytes.empty()) out.push_back(sanitize_utf8(bytes));
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const json& j)
      : content_(j.value("content", " ")), start_(j.value("start", 0)), stop_(j.value("stop", 0)) {}
  // Removes up to `start` leading and `stop` trailing copies of `content` from each token.
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (content_.empty()) return;
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (int i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0; ++i)
        b += content_.size();
      for (int i = 0; i < stop_ && e >= b + content_.size() &&
                      t.compare(e - content_.size(), content_.size(), content_) == 0; ++i)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const json& j) : replacement_(j.value("replacement", "\xE2\x96\x81")) {
    std::string scheme = j.value("prepend_scheme", "");
    strip_first_ = scheme.empty() ? j.value("add_prefix_space", true) : scheme != "never";
  }
  // Replacement chars become spaces; the space the pre-tokenizer prepended to the first word
  // is dropped again.
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string r;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) r += ' ', p += replacement_.size();
        else r += t[p++];
      }
      if (i == 0 && strip_first_ && !r.empty() && r[0] == ' ') r.erase(0, 1);
      tokens[i] = std::move(r);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j, const std::unordered_set<std::string>* added) {
  if (j.is_null()) return nullptr;
  std::string type = component_type("decoder", j);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>(added);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(j);
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (auto& d : j.at("decoders"))
      if (auto p = make_decoder(d, added)) parts.push_back(std::move(p));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  unsupported("decoder", j);
}

namespace {

// One element of a template: a fixed run of special-token ids, or the input sequence.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};

class TemplateProcessing : public PostProcessor {
 public:
  TemplateProcessing(const json& j, const TokenLookup& lookup) {
    const json& single = j.at("single");
    if (!single.is_array())
      throw UserError("tokenizer.json: TemplateProcessing \"single\" must be an array");
    const json specials = j.value("special_tokens", json::object());
    for (auto& item : single) {
      TemplateItem t;
      if (item.contains("Sequence")) {
        t.is_sequence = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].at("id").get<std::string>();
        if (specials.contains(name) && specials[name].contains("ids")) {
          t.ids = specials[name]["ids"].get<std::vector<int32_t>>();
        } else if (auto id = lookup(name)) {
          t.ids.push_back(*id);
        } else {
          throw UserError("tokenizer.json: TemplateProcessing special token \"" + name +
                          "\" is not in the vocabulary");
        }
      } else {
        throw UserError("tokenizer.json: unsupported TemplateProcessing item " + item.dump());
      }
      items_.push_back(std::move(t));
    }
  }
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    if (!add_special_tokens) return;  // the template's special tokens are the only change
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (auto& item : items_) {
      if (item.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
      else out.insert(out.end(), item.ids.begin(), item.ids.end());
    }
    ids = std::move(out);
  }
  std::vector<TemplateItem> items_;
  TemplateProcessing() = default;
};

class NoOpProcessor : public PostProcessor {  // ByteLevel: it only adjusts offsets
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> p) : parts_(std::move(p)) {}
  void process(std::vector<int32_t>& ids, bool add) const override {
    for (auto& p : parts_) p->process(ids, add);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const TokenLookup& lookup) {
  if (j.is_null()) return nullptr;
  std::string type = component_type("post_processor", j);
  if (type == "TemplateProcessing") return std::make_unique<TemplateProcessing>(j, lookup);
  if (type == "ByteLevel") return std::make_unique<NoOpProcessor>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PostProcessor>> parts;
    for (auto& p : j.at("processors"))
      if (auto q = make_post_processor(p, lookup)) parts.push_back(std::move(q));
    return std::make_unique<SequenceProcessor>(std::move(parts));
  }
  unsupported("post_processor", j);
}

std::unique_ptr<PostProcessor> make_bos_eos_processor(std::optional<int32_t> bos,
                                                      std::optional<int32_t> eos) {
  auto p = std::make_unique<TemplateProcessing>();
  if (bos) p->items_.push_back({false, {*bos}});
  p->items_.push_back({true, {}});
  if (eos) p->items_.push_back({false, {*eos}});
  return p;
}

}  // namespace tessera::tok
