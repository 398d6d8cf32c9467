// Lexer of tessera's Jinja interpreter. Applies whitespace control while lexing: {%- -%},
// {{- -}}, {#- -#}, and Hugging Face's environment settings trim_blocks=True and
// lstrip_blocks=True (disabled per tag by {%+ / +%}), and drops one trailing newline of the
// template (keep_trailing_newline=False), as Jinja does.
#pragma once
#include <string>
#include <vector>

namespace tessera::jinja {

enum class Tok { Text, BlockBegin, BlockEnd, VarBegin, VarEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Text: the raw text; Name/Op: spelling; String: decoded value; numbers
  int line = 1;
  int col = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws UserError("chat template: line L, column C: ...") on malformed input.
std::vector<Token> tokenize(const std::string& source, const LexOptions& options = {});

// Formats a parse/lex error with its position.
[[noreturn]] void syntax_error(int line, int col, const std::string& what);

}  // namespace tessera::jinja
