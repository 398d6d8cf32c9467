// UTF-8 and Unicode helpers for the tokenizer. Everything in the tokenizer works on UTF-8
// std::string; these are the few places that look at code points.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace tessera::tok {

// Length in bytes of the UTF-8 sequence starting with lead byte `b` (1 for stray bytes), for
// text already known to be valid UTF-8.
inline size_t utf8_len(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i] (valid UTF-8 assumed) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

// True when `s` is entirely valid UTF-8.
bool is_valid_utf8(std::string_view s);

// Replaces every ill-formed sequence with U+FFFD using the WHATWG / Unicode "maximal subpart"
// rule (what JavaScript's TextDecoder and Python's errors="replace" do), so invalid input is
// tokenized the way Hugging Face tokenizes the same bytes after its host language decoded them.
std::string sanitize_utf8(std::string_view s);

// Unicode normalization forms through utf8proc. `form` is one of "NFC", "NFD", "NFKC", "NFKD".
std::string unicode_normalize(std::string_view s, std::string_view form);

// Full lowercase mapping like JavaScript's String.prototype.toLowerCase / Rust's
// str::to_lowercase: per-code-point simple mapping plus the two context rules that matter in
// practice (U+0130 -> "i" U+0307, and Greek final sigma).
std::string unicode_lowercase(std::string_view s);

// Unicode White_Space property (what Oniguruma's and Rust's \s / char::is_whitespace use).
bool is_unicode_whitespace(char32_t cp);
// General category N* (Rust's char::is_numeric).
bool is_unicode_numeric(char32_t cp);
// Letter, number, mark or connector punctuation: the "word" characters of \w.
bool is_unicode_word(char32_t cp);

// Trims Unicode whitespace (JavaScript trimStart/trimEnd semantics: White_Space plus U+FEFF).
std::string_view trim_start(std::string_view s);
std::string_view trim_end(std::string_view s);

// GPT-2's reversible byte <-> printable-code-point table used by ByteLevel components.
const std::string& byte_to_unicode(unsigned char b);  // UTF-8 of the mapped code point
int unicode_to_byte(char32_t cp);                     // -1 when cp is not in the table

}  // namespace tessera::tok
