// Statement half of the Jinja parser: {% if %}, {% for %}, {% set %}, {% macro %},
// {% call %}, {% filter %}, {% break %}/{% continue %}, {% generation %}.
#include "runtime/jinja_parser.h"

#include <algorithm>

#include "runtime/jinja_parser_impl.h"

namespace tessera::jinja {

Body parse(const std::string& source, const LexOptions& options) {
  detail::Parser p(tokenize(source, options));
  return p.parse_template();
}

namespace detail {

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Text: return "text";
    case Tok::BlockBegin: return "'{%'";
    case Tok::BlockEnd: return "'%}'";
    case Tok::VarBegin: return "'{{'";
    case Tok::VarEnd: return "'}}'";
    case Tok::Name: return "'" + t.text + "'";
    case Tok::String: return "string literal";
    case Tok::Int:
    case Tok::Float: return "number " + t.text;
    case Tok::Op: return "'" + t.text + "'";
    case Tok::Eof: return "end of template";
  }
  return "?";
}

const Token& Parser::peek(size_t ahead) const {
  size_t k = std::min(idx_ + ahead, toks_.size() - 1);
  return toks_[k];
}
const Token& Parser::next() {
  const Token& t = peek();
  if (idx_ < toks_.size() - 1) ++idx_;
  return t;
}
bool Parser::at_op(const char* op, size_t ahead) const {
  const Token& t = peek(ahead);
  return t.type == Tok::Op && t.text == op;
}
bool Parser::at_name(const char* name, size_t ahead) const {
  const Token& t = peek(ahead);
  return t.type == Tok::Name && t.text == name;
}
bool Parser::skip_op(const char* op) {
  if (!at_op(op)) return false;
  next();
  return true;
}
bool Parser::skip_name(const char* name) {
  if (!at_name(name)) return false;
  next();
  return true;
}
void Parser::expect_op(const char* op) {
  if (!skip_op(op)) fail(peek(), std::string("expected '") + op + "', got " + describe(peek()));
}
std::string Parser::expect_name() {
  if (peek().type != Tok::Name) fail(peek(), "expected a name, got " + describe(peek()));
  return next().text;
}
void Parser::fail(const Token& t, const std::string& what) const { syntax_error(t.line, t.col, what); }
ExprPtr Parser::make(ExprKind kind, const Token& at) const {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = at.line;
  e->col = at.col;
  return e;
}

void Parser::expect_block_end() {
  if (peek().type != Tok::BlockEnd) fail(peek(), "expected '%}', got " + describe(peek()));
  next();
}

Body Parser::parse_template() {
  std::string found;
  Body body = parse_until({}, &found);
  return body;
}

// Parses statements until a {% stop %} tag (consumed up to the stop word) or end of input.
Body Parser::parse_until(const std::vector<std::string>& stops, std::string* found) {
  Body body;
  for (;;) {
    const Token& t = peek();
    if (t.type == Tok::Eof) {
      if (!stops.empty())
        fail(t, "unexpected end of template, expected '{% " + stops.back() + " %}'");
      return body;
    }
    if (t.type == Tok::Text) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::Text;
      s->text = next().text;
      body.push_back(std::move(s));
    } else if (t.type == Tok::VarBegin) {
      next();
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::Output;
      s->line = t.line;
      s->col = t.col;
      s->expr = parse_tuple_or_expr();
      if (peek().type != Tok::VarEnd) fail(peek(), "expected '}}', got " + describe(peek()));
      next();
      body.push_back(std::move(s));
    } else if (t.type == Tok::BlockBegin) {
      const Token& word = peek(1);
      if (word.type == Tok::Name &&
          std::find(stops.begin(), stops.end(), word.text) != stops.end()) {
        next();
        *found = next().text;
        return body;
      }
      next();
      body.push_back(parse_statement());
    } else {
      fail(t, "unexpected " + describe(t));
    }
  }
}

StmtPtr Parser::parse_statement() {
  const Token& at = peek();
  if (at.type != Tok::Name) fail(at, "expected a statement name, got " + describe(at));
  std::string word = next().text;
  if (word == "if") return parse_if(at);
  if (word == "for") return parse_for(at);
  if (word == "set") return parse_set(at);
  if (word == "macro") return parse_macro(at, false);
  if (word == "call") return parse_macro(at, true);
  if (word == "filter") return parse_filter_block(at);
  if (word == "break" || word == "continue") {
    expect_block_end();
    auto s = std::make_unique<Stmt>();
    s->kind = word == "break" ? StmtKind::Break : StmtKind::Continue;
    return s;
  }
  if (word == "generation") {  // transformers' {% generation %} marker: renders its body
    expect_block_end();
    auto s = std::make_unique<Stmt>();
    s->kind = StmtKind::If;
    s->expr = make(ExprKind::Literal, at);
    s->expr->value = Value::boolean(true);
    std::string found;
    s->body = parse_until({"endgeneration"}, &found);
    expect_block_end();
    return s;
  }
  fail(at, "unknown statement '" + word + "'");
}

StmtPtr Parser::parse_if(const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::If;
  s->line = at.line;
  s->col = at.col;
  s->expr = parse_tuple_or_expr();
  expect_block_end();
  std::string found;
  s->body = parse_until({"elif", "else", "endif"}, &found);
  if (found == "elif") {
    s->else_body.push_back(parse_if(peek()));
    return s;  // the nested if consumed the endif
  }
  if (found == "else") {
    expect_block_end();
    s->else_body = parse_until({"endif"}, &found);
  }
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_for(const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::For;
  s->line = at.line;
  s->col = at.col;
  bool paren = skip_op("(");
  do {
    s->targets.push_back(expect_name());
  } while (skip_op(","));
  if (paren) expect_op(")");
  if (!skip_name("in")) fail(peek(), "expected 'in' in for loop, got " + describe(peek()));
  s->expr = parse_tuple_or_expr(false);
  if (skip_name("if")) s->cond = parse_expr();
  if (at_name("recursive")) fail(peek(), "recursive for loops are not supported");
  expect_block_end();
  std::string found;
  s->body = parse_until({"else", "endfor"}, &found);
  if (found == "else") {
    expect_block_end();
    s->else_body = parse_until({"endfor"}, &found);
  }
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_set(const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::Set;
  s->line = at.line;
  s->col = at.col;
  s->targets.push_back(expect_name());
  if (skip_op(".")) {
    s->text = expect_name();  // set ns.attr = value
  } else {
    while (skip_op(",")) s->targets.push_back(expect_name());
  }
  if (skip_op("=")) {
    s->expr = parse_tuple_or_expr();
    expect_block_end();
    return s;
  }
  if (!s->text.empty() || s->targets.size() != 1)
    fail(peek(), "expected '=' in set, got " + describe(peek()));
  expect_block_end();  // block set: {% set x %}...{% endset %}
  std::string found;
  s->body = parse_until({"endset"}, &found);
  expect_block_end();
  return s;
}

std::vector<Param> Parser::parse_params() {
  std::vector<Param> params;
  expect_op("(");
  while (!skip_op(")")) {
    Param p;
    p.name = expect_name();
    if (skip_op("=")) p.default_value = parse_expr();
    params.push_back(std::move(p));
    if (!at_op(")")) expect_op(",");
  }
  return params;
}

StmtPtr Parser::parse_macro(const Token& at, bool is_call) {
  auto s = std::make_unique<Stmt>();
  s->kind = is_call ? StmtKind::CallBlock : StmtKind::Macro;
  s->line = at.line;
  s->col = at.col;
  std::string found;
  if (is_call) {
    if (at_op("(")) s->params = parse_params();
    s->expr = parse_expr();
    if (s->expr->kind != ExprKind::Call) fail(at, "{% call %} needs a macro call");
    expect_block_end();
    s->body = parse_until({"endcall"}, &found);
  } else {
    s->text = expect_name();
    s->params = parse_params();
    expect_block_end();
    s->body = parse_until({"endmacro"}, &found);
  }
  if (peek().type == Tok::Name) next();  // {% endmacro name %}
  expect_block_end();
  return s;
}

StmtPtr Parser::parse_filter_block(const Token& at) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::FilterBlock;
  s->line = at.line;
  s->col = at.col;
  ExprPtr chain = parse_filter(nullptr);
  while (skip_op("|")) chain = parse_filter(std::move(chain));
  s->expr = std::move(chain);
  expect_block_end();
  std::string found;
  s->body = parse_until({"endfilter"}, &found);
  expect_block_end();
  return s;
}

}  // namespace detail
}  // namespace tessera::jinja
