#include "runtime/jinja_lexer.h"

#include <cctype>
#include <cstdint>
#include <cstring>

#include "runtime/error.h"

namespace tessera::jinja {

void syntax_error(int line, int col, const std::string& what) {
  throw UserError("chat template: line " + std::to_string(line) + ", column " +
                  std::to_string(col) + ": " + what);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_ident(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  Lexer(const std::string& src, const LexOptions& opt) : src_(src), opt_(opt) {}

  std::vector<Token> run() {
    bool strip_leading = false;  // the previous tag ended with '-'
    while (pos_ < src_.size()) {
      size_t start = find_tag(pos_);
      std::string text = src_.substr(pos_, start - pos_);
      bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
      if (strip_leading) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
        line_starting = false;
      }
      if (start == src_.size()) {
        emit_text(text, pos_);
        pos_ = start;
        break;
      }
      char kind = src_[start + 1];
      char mod = start + 2 < src_.size() ? src_[start + 2] : 0;
      if (mod == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (opt_.lstrip_blocks && kind != '{' && mod != '+') {
        size_t l = text.rfind('\n');
        l = (l == std::string::npos) ? 0 : l + 1;
        if ((l > 0 || line_starting) &&
            text.find_first_not_of(" \t", l) == std::string::npos)
          text.erase(l);
      }
      emit_text(text, pos_);
      pos_ = start + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      char end_mod = 0;
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) err_at(start, "unterminated comment (missing '#}')");
        end_mod = end > pos_ ? src_[end - 1] : 0;
        pos_ = end + 2;
      } else if (kind == '%' && try_raw(start)) {
        strip_leading = false;
        continue;
      } else {
        end_mod = lex_tag(kind, start);
      }
      strip_leading = end_mod == '-';
      if (kind != '{' && end_mod != '-' && end_mod != '+' && opt_.trim_blocks) {
        if (pos_ < src_.size() && src_[pos_] == '\n') {
          ++pos_;
        } else if (src_.compare(pos_, 2, "\r\n") == 0) {
          pos_ += 2;
        }
      }
    }
    Token eof{Tok::Eof, "", 0, 0};
    position(src_.size(), eof.line, eof.col);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k)
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#'))
        return k;
    return src_.size();
  }

  void position(size_t at, int& line, int& col) const {
    line = 1;
    col = 1;
    for (size_t k = 0; k < at && k < src_.size(); ++k) {
      if (src_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
  }

  [[noreturn]] void err_at(size_t at, const std::string& what) const {
    int line, col;
    position(at, line, col);
    syntax_error(line, col, what);
  }

  void push(Tok type, std::string text, size_t at) {
    Token t{type, std::move(text), 0, 0};
    position(at, t.line, t.col);
    tokens_.push_back(std::move(t));
  }

  void emit_text(const std::string& text, size_t at) {
    if (!text.empty()) push(Tok::Text, text, at);
  }

  // {% raw %}...{% endraw %}: the body is emitted verbatim.
  bool try_raw(size_t start) {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && is_ident(src_[p + 3]))) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    bool strip_after_open = false;
    if (p < src_.size() && src_[p] == '-') {
      strip_after_open = true;
      ++p;
    }
    if (src_.compare(p, 2, "%}") != 0) err_at(start, "malformed raw tag");
    size_t body = p + 2;
    for (size_t q = src_.find("{%", body); q != std::string::npos; q = src_.find("{%", q + 2)) {
      size_t r = q + 2;
      bool strip_before_close = r < src_.size() && src_[r] == '-';
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) ++r;
      while (r < src_.size() && is_space(src_[r])) ++r;
      if (src_.compare(r, 6, "endraw") != 0) continue;
      r += 6;
      while (r < src_.size() && is_space(src_[r])) ++r;
      char end_mod = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) end_mod = src_[r++];
      if (src_.compare(r, 2, "%}") != 0) continue;
      std::string text = src_.substr(body, q - body);
      if (strip_after_open) text.erase(0, text.find_first_not_of(" \t\r\n\f\v") == std::string::npos ? text.size() : text.find_first_not_of(" \t\r\n\f\v"));
      if (strip_before_close)
        while (!text.empty() && is_space(text.back())) text.pop_back();
      emit_text(text, body);
      pos_ = r + 2;
      if (end_mod == '-')
        while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      else if (end_mod != '+' && opt_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n')
        ++pos_;
      return true;
    }
    err_at(start, "unterminated raw block (missing '{% endraw %}')");
  }

  // Lexes the inside of a {{ }} or {% %} tag; returns the end modifier ('-', '+' or 0).
  char lex_tag(char kind, size_t start) {
    push(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", start);
    const char* close = kind == '{' ? "}}" : "%}";
    int depth = 0;
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        err_at(start, std::string("unterminated tag (missing '") + close + "')");
      char c = src_[pos_];
      if (depth == 0) {
        for (char m : {'-', '+'}) {
          if (c == m && src_.compare(pos_ + 1, 2, close) == 0 && (m == '-' || kind == '%')) {
            push(kind == '{' ? Tok::VarEnd : Tok::BlockEnd, "", pos_);
            pos_ += 3;
            return m;
          }
        }
        if (src_.compare(pos_, 2, close) == 0) {
          push(kind == '{' ? Tok::VarEnd : Tok::BlockEnd, "", pos_);
          pos_ += 2;
          return 0;
        }
      }
      if (c == '{' && pos_ + 1 < src_.size() && (src_[pos_ + 1] == '%' || src_[pos_ + 1] == '#'))
        err_at(start, std::string("unterminated tag (missing '") + close + "')");
      if (is_ident_start(c)) {
        size_t b = pos_;
        while (pos_ < src_.size() && is_ident(src_[pos_])) ++pos_;
        push(Tok::Name, src_.substr(b, pos_ - b), b);
      } else if (is_digit(c)) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op(1, c);
        for (const char* t : two)
          if (src_.compare(pos_, 2, t) == 0) op = t;
        if (op.size() == 1 && !std::strchr("+-*/%~<>=()[]{},.:|!", c))
          err_at(pos_, std::string("unexpected character '") + c + "'");
        if (op == "!") err_at(pos_, "unexpected character '!'");
        if (c == '{' || c == '(' || c == '[') ++depth;
        if ((c == '}' || c == ')' || c == ']') && depth > 0) --depth;
        push(Tok::Op, op, pos_);
        pos_ += op.size();
      }
    }
  }

  void lex_number() {
    size_t b = pos_;
    bool is_float = false;
    while (pos_ < src_.size() && (is_digit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t q = pos_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        is_float = true;
        pos_ = q;
        while (pos_ < src_.size() && is_digit(src_[pos_])) ++pos_;
      }
    }
    std::string digits;
    for (size_t k = b; k < pos_; ++k)
      if (src_[k] != '_') digits += src_[k];
    push(is_float ? Tok::Float : Tok::Int, digits, b);
  }

  void lex_string(char quote) {
    size_t b = pos_++;
    std::string out;
    for (;;) {
      if (pos_ >= src_.size()) err_at(b, "unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) err_at(b, "unterminated string literal");
      char e = src_[pos_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'a': out += '\a'; break;
        case '0': out += '\0'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + n > src_.size()) err_at(b, "truncated escape in string literal");
          std::string hex = src_.substr(pos_, n);
          if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            err_at(b, "bad escape in string literal");
          uint32_t cp = uint32_t(std::stoul(hex, nullptr, 16));
          pos_ += n;
          append_utf8(out, cp);
          break;
        }
        default: out += '\\'; out += e;
      }
    }
    push(Tok::String, out, b);
  }

  const std::string& src_;
  LexOptions opt_;
  size_t pos_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const LexOptions& options) {
  std::string src = source;
  if (!src.empty() && src.back() == '\n') src.pop_back();  // keep_trailing_newline=False
  return Lexer(src, options).run();
}

}  // namespace tessera::jinja
