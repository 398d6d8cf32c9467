#include "runtime/tokenizer_added_tokens.h"

#include "runtime/tokenizer_unicode.h"

namespace tessera::tok {

void AddedTokenSplitter::build(const std::vector<std::pair<std::string, int>>& patterns,
                               const std::vector<AddedToken>* tokens) {
  tokens_ = tokens;
  nodes_.assign(1, Node{});
  std::fill(std::begin(first_byte_), std::end(first_byte_), false);
  for (auto& [pat, tok] : patterns) {
    if (pat.empty()) continue;
    first_byte_[static_cast<unsigned char>(pat[0])] = true;
    int n = 0;
    for (unsigned char c : pat) {
      auto it = nodes_[n].next.find(c);
      if (it == nodes_[n].next.end()) {
        nodes_.push_back(Node{});
        nodes_.back().depth = nodes_[n].depth + 1;
        int fresh = static_cast<int>(nodes_.size()) - 1;
        nodes_[n].next[c] = fresh;
        n = fresh;
      } else {
        n = it->second;
      }
    }
    if (nodes_[n].token < 0) nodes_[n].token = tok;  // first listed wins on duplicates
  }
}

namespace {
bool word_char_before(std::string_view s, size_t pos) {
  if (pos == 0) return false;
  size_t start = pos - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return is_unicode_word(next_code_point(s, start));
}
bool word_char_at(std::string_view s, size_t pos) {
  if (pos >= s.size()) return false;
  return is_unicode_word(next_code_point(s, pos));
}
}  // namespace

std::vector<Section> AddedTokenSplitter::split(std::string_view text) const {
  std::vector<Section> out;
  if (empty()) {
    if (!text.empty()) out.push_back({std::string(text), -1});
    return out;
  }
  size_t start = 0, i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    int n = 0, best = -1;
    size_t best_len = 0;
    for (size_t j = i; j < text.size(); ++j) {
      auto it = nodes_[n].next.find(static_cast<unsigned char>(text[j]));
      if (it == nodes_[n].next.end()) break;
      n = it->second;
      if (nodes_[n].token >= 0) best = nodes_[n].token, best_len = nodes_[n].depth;
    }
    if (best >= 0 && (*tokens_)[best].single_word &&
        (word_char_before(text, i) || word_char_at(text, i + best_len)))
      best = -1;
    if (best < 0) {
      ++i;
      continue;
    }
    if (i > start) out.push_back({std::string(text.substr(start, i - start)), -1});
    out.push_back({std::string(text.substr(i, best_len)), best});
    i += best_len;
    start = i;
  }
  if (start < text.size()) out.push_back({std::string(text.substr(start)), -1});
  return out;
}

void apply_strip_flags(std::vector<Section>& s, const std::vector<AddedToken>& tokens) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i].token < 0) continue;
    const AddedToken& t = tokens[s[i].token];
    if (t.lstrip && i > 0 && s[i - 1].token < 0) s[i - 1].text = std::string(trim_end(s[i - 1].text));
    if (t.rstrip && i + 1 < s.size() && s[i + 1].token < 0)
      s[i + 1].text = std::string(trim_start(s[i + 1].text));
  }
}

}  // namespace tessera::tok
