// Added tokens (tokenizer.json "added_tokens"): found in the text before the model runs, longest
// match first, the way Hugging Face's AddedVocabulary does.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool single_word = false;  // match only when not inside a word
  bool normalized = false;   // matched in the normalized text (content normalized too)
};

// A piece of text, or (token >= 0) an added token found in it. `token` indexes the list given
// to AddedTokenSplitter.
struct Section {
  std::string text;
  int token = -1;
};

class AddedTokenSplitter {
 public:
  AddedTokenSplitter() = default;
  // `patterns[i].first` is the string to find; `.second` the token index it stands for.
  void build(const std::vector<std::pair<std::string, int>>& patterns,
             const std::vector<AddedToken>* tokens);
  bool empty() const { return nodes_.size() <= 1; }

  // Splits at the leftmost-longest occurrences of the patterns (a single_word token matches
  // only with no word character on either side).
  std::vector<Section> split(std::string_view text) const;

 private:
  struct Node {
    std::map<unsigned char, int> next;
    int token = -1;
    size_t depth = 0;
  };
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
  const std::vector<AddedToken>* tokens_ = nullptr;
};

// Applies lstrip/rstrip: trims the whitespace next to added tokens off neighbouring text.
void apply_strip_flags(std::vector<Section>& sections, const std::vector<AddedToken>& tokens);

}  // namespace tessera::tok
