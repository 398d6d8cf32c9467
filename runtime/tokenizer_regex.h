// A compiled regular expression from tokenizer.json. Hugging Face compiles these with
// Oniguruma; PCRE2 in UTF + UCP mode accepts the same syntax for everything real tokenizers use
// ((?i:...), \p{L}, \p{N}, lookahead), after a few escapes whose meaning differs are rewritten.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::tok {

class Regex {
 public:
  // Throws UserError naming `what` (e.g. "pre_tokenizer Split") when the pattern is invalid.
  Regex(const std::string& oniguruma_pattern, const std::string& what);
  // Regex matching `literal` exactly.
  static Regex literal(const std::string& literal, const std::string& what);

  // Appends the [begin, end) byte spans of successive non-empty, non-overlapping matches.
  // `text` must be valid UTF-8.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  // Replaces every match with `with`.
  std::string replace_all(std::string_view text, std::string_view with) const;

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
};

// Rewrites the Oniguruma escapes whose PCRE2 meaning differs (\s, \S -> White_Space; \h, \H ->
// hex digits). Exposed for tests.
std::string oniguruma_to_pcre2(const std::string& pattern);

}  // namespace tessera::tok
