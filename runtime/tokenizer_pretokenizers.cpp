// Pre-tokenizers: ByteLevel, Split, Digits, Metaspace, Sequence.
#include "runtime/error.h"
#include "runtime/tokenizer_components.h"
#include "runtime/tokenizer_regex.h"
#include "runtime/tokenizer_unicode.h"

namespace tessera::tok {

void PreTokenizer::pre_tokenize(std::vector<std::string>& pieces, int section_index) const {
  std::vector<std::string> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) split(p, section_index, out);
  pieces = std::move(out);
}

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j) {
  std::string b = j.value("behavior", "Isolated");
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  throw UserError("tokenizer.json: unsupported Split behavior \"" + b + "\"");
}

struct Span {
  size_t begin, end;
  bool is_match;
};

// Turns non-overlapping match spans into pieces the way HF's SplitDelimiterBehavior does
// (tokenizers/src/tokenizer/normalizer.rs `split`): the gaps between matches are pieces too.
void split_by_matches(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches,
                      bool invert, Behavior behavior, std::vector<std::string>& out) {
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) spans.push_back({prev, b, invert});
    spans.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < text.size()) spans.push_back({prev, text.size(), invert});

  std::vector<Span> pieces;
  switch (behavior) {
    case Behavior::Removed:
      for (auto& s : spans)
        if (!s.is_match) pieces.push_back(s);
      break;
    case Behavior::Isolated:
      break;  // every span is a piece (emitted from `spans` below)
    case Behavior::MergedWithPrevious: {
      // A delimiter joins the piece before it, unless that piece was itself a delimiter.
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.is_match && !prev_match && !pieces.empty()) pieces.back().end = s.end;
        else pieces.push_back(s);
        prev_match = s.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      // Mirror image: walk backwards, a delimiter joins the piece after it.
      bool prev_match = false;
      for (size_t k = spans.size(); k-- > 0;) {
        auto& s = spans[k];
        if (s.is_match && !prev_match && !pieces.empty()) pieces.back().begin = s.begin;
        else pieces.push_back(s);
        prev_match = s.is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    }
    case Behavior::Contiguous: {
      bool prev_match = false;
      for (auto& s : spans) {
        if (s.is_match == prev_match && !pieces.empty()) pieces.back().end = s.end;
        else pieces.push_back(s);
        prev_match = s.is_match;
      }
      break;
    }
  }
  for (auto& p : behavior == Behavior::Isolated ? spans : pieces)
    if (p.end > p.begin) out.emplace_back(text.substr(p.begin, p.end - p.begin));
}

class ByteLevel : public PreTokenizer {
 public:
  explicit ByteLevel(const json& j)
      : add_prefix_space_(j.value("add_prefix_space", false)),
        use_regex_(j.value("use_regex", true)) {
    // GPT-2's split pattern, as in HF's ByteLevel pre-tokenizer.
    static const Regex gpt2(
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
        "pre_tokenizer ByteLevel");
    regex_ = &gpt2;
  }
  void split(std::string_view piece, int, std::vector<std::string>& out) const override {
    std::string prefixed;
    if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!use_regex_) {
      out.push_back(map_bytes(piece));
      return;
    }
    std::vector<std::pair<size_t, size_t>> m;
    regex_->find_all(piece, m);
    // The pattern's alternatives cover every character, so the matches tile the piece.
    for (auto [b, e] : m) out.push_back(map_bytes(piece.substr(b, e - b)));
  }

 private:
  static std::string map_bytes(std::string_view s) {
    std::string r;
    r.reserve(s.size() * 2);
    for (unsigned char c : s) r += byte_to_unicode(c);
    return r;
  }
  bool add_prefix_space_, use_regex_;
  const Regex* regex_;
};

class Split : public PreTokenizer {
 public:
  explicit Split(const json& j)
      : pattern_(make_pattern(j.at("pattern"), "pre_tokenizer Split")),
        behavior_(parse_behavior(j)),
        invert_(j.value("invert", false)) {}
  void split(std::string_view piece, int, std::vector<std::string>& out) const override {
    std::vector<std::pair<size_t, size_t>> m;
    pattern_.find_all(piece, m);
    split_by_matches(piece, m, invert_, behavior_, out);
  }

 private:
  Regex pattern_;
  Behavior behavior_;
  bool invert_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(const json& j) : individual_(j.value("individual_digits", false)) {}
  void split(std::string_view piece, int, std::vector<std::string>& out) const override {
    std::vector<std::pair<size_t, size_t>> m;
    for (size_t i = 0; i < piece.size();) {
      size_t b = i;
      char32_t cp = next_code_point(piece, i);
      if (is_unicode_numeric(cp)) m.emplace_back(b, i);
    }
    split_by_matches(piece, m, false, individual_ ? Behavior::Isolated : Behavior::Contiguous, out);
  }

 private:
  bool individual_;
};

class Metaspace : public PreTokenizer {
 public:
  explicit Metaspace(const json& j)
      : replacement_(j.value("replacement", "\xE2\x96\x81")), split_(j.value("split", true)) {
    std::string scheme = j.value("prepend_scheme", "");
    if (scheme.empty()) scheme = j.value("add_prefix_space", true) ? "always" : "never";
    if (scheme != "always" && scheme != "first" && scheme != "never")
      throw UserError("tokenizer.json: unsupported Metaspace prepend_scheme \"" + scheme + "\"");
    scheme_ = scheme;
  }
  void split(std::string_view piece, int section_index, std::vector<std::string>& out) const override {
    std::string s;
    s.reserve(piece.size() + 8);
    for (char c : piece) {
      if (c == ' ') s += replacement_;
      else s += c;
    }
    bool prepend = scheme_ == "always" || (scheme_ == "first" && section_index == 0);
    if (prepend && s.compare(0, replacement_.size(), replacement_) != 0) s = replacement_ + s;
    if (!split_) {
      out.push_back(std::move(s));
      return;
    }
    std::vector<std::pair<size_t, size_t>> m;
    for (size_t pos = s.find(replacement_); pos != std::string::npos;
         pos = s.find(replacement_, pos + replacement_.size()))
      m.emplace_back(pos, pos + replacement_.size());
    split_by_matches(s, m, false, Behavior::MergedWithNext, out);
  }

 private:
  std::string replacement_;
  std::string scheme_;
  bool split_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void split(std::string_view piece, int section_index, std::vector<std::string>& out) const override {
    std::vector<std::string> pieces{std::string(piece)};
    pre_tokenize(pieces, section_index);
    for (auto& p : pieces) out.push_back(std::move(p));
  }
  void pre_tokenize(std::vector<std::string>& pieces, int section_index) const override {
    for (auto& p : parts_) p->pre_tokenize(pieces, section_index);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  std::string type = component_type("pre_tokenizer", j);
  if (type == "ByteLevel") return std::make_unique<ByteLevel>(j);
  if (type == "Split") return std::make_unique<Split>(j);
  if (type == "Digits") return std::make_unique<Digits>(j);
  if (type == "Metaspace") return std::make_unique<Metaspace>(j);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (auto& p : j.at("pretokenizers"))
      if (auto q = make_pre_tokenizer(p)) parts.push_back(std::move(q));
    return std::make_unique<Sequence>(std::move(parts));
  }
  unsupported("pre_tokenizer", j);
}

}  // namespace tessera::tok
