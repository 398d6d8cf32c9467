// Expression half of the Jinja parser, with Jinja's precedence (loosest first):
// x if c else y; or; and; not; comparisons and in / not in; + -; ~; * / // %; **;
// unary - +; primary with postfix .attr [i] [a:b:c] (args); filters | f and tests `is`.
#include <cstdlib>

#include "runtime/jinja_eval.h"
#include "runtime/jinja_parser_impl.h"

namespace tessera::jinja::detail {

ExprPtr Parser::parse_tuple_or_expr(bool allow_cond) {
  const Token& at = peek();
  ExprPtr first = parse_expr(allow_cond);
  if (!at_op(",")) return first;
  auto list = make(ExprKind::ListLit, at);
  list->items.push_back(std::move(first));
  while (skip_op(",")) {
    if (peek().type == Tok::BlockEnd || peek().type == Tok::VarEnd) break;
    list->items.push_back(parse_expr(allow_cond));
  }
  return list;
}

ExprPtr Parser::parse_expr(bool allow_cond) {
  ExprPtr e = parse_or();
  while (allow_cond && at_name("if")) {
    const Token& at = next();
    auto t = make(ExprKind::Ternary, at);
    t->b = parse_or();
    if (skip_name("else")) t->c = parse_expr();
    t->a = std::move(e);
    e = std::move(t);
  }
  return e;
}

ExprPtr Parser::parse_or() {
  ExprPtr e = parse_and();
  while (at_name("or")) {
    auto b = make(ExprKind::Binary, next());
    b->name = "or";
    b->a = std::move(e);
    b->b = parse_and();
    e = std::move(b);
  }
  return e;
}

ExprPtr Parser::parse_and() {
  ExprPtr e = parse_not();
  while (at_name("and")) {
    auto b = make(ExprKind::Binary, next());
    b->name = "and";
    b->a = std::move(e);
    b->b = parse_not();
    e = std::move(b);
  }
  return e;
}

ExprPtr Parser::parse_not() {
  if (at_name("not")) {
    auto u = make(ExprKind::Unary, next());
    u->name = "not";
    u->a = parse_not();
    return u;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  ExprPtr e = parse_math1();
  for (;;) {
    std::string op;
    const Token& at = peek();
    if (at.type == Tok::Op && (at.text == "==" || at.text == "!=" || at.text == "<" ||
                               at.text == ">" || at.text == "<=" || at.text == ">=")) {
      op = at.text;
      next();
    } else if (at_name("in")) {
      op = "in";
      next();
    } else if (at_name("not") && at_name("in", 1)) {
      op = "not in";
      next();
      next();
    } else {
      return e;
    }
    auto b = make(ExprKind::Binary, at);
    b->name = op;
    b->a = std::move(e);
    b->b = parse_math1();
    e = std::move(b);
  }
}

namespace {
template <typename F>
ExprPtr binary_level(Parser* self, F sub, std::initializer_list<const char*> ops,
                     const std::function<const Token*(const char*)>& take) {
  ExprPtr e = (self->*sub)();
  for (;;) {
    const Token* at = nullptr;
    std::string op;
    for (const char* o : ops)
      if ((at = take(o))) {
        op = o;
        break;
      }
    if (!at) return e;
    auto b = std::make_unique<Expr>();
    b->kind = ExprKind::Binary;
    b->line = at->line;
    b->col = at->col;
    b->name = op;
    b->a = std::move(e);
    b->b = (self->*sub)();
    e = std::move(b);
  }
}
}  // namespace

#define TESSERA_BINARY_LEVEL(fn, sub, ...)                                           \
  ExprPtr Parser::fn() {                                                             \
    return binary_level(this, &Parser::sub, {__VA_ARGS__}, [this](const char* o) {   \
      return at_op(o) ? &next() : static_cast<const Token*>(nullptr);                \
    });                                                                              \
  }

TESSERA_BINARY_LEVEL(parse_math1, parse_concat, "+", "-")
TESSERA_BINARY_LEVEL(parse_concat, parse_math2, "~")
TESSERA_BINARY_LEVEL(parse_math2, parse_pow, "*", "/", "//", "%")
#undef TESSERA_BINARY_LEVEL

ExprPtr Parser::parse_pow() {
  ExprPtr e = parse_unary(true);
  while (at_op("**")) {
    auto b = make(ExprKind::Binary, next());
    b->name = "**";
    b->a = std::move(e);
    b->b = parse_unary(true);
    e = std::move(b);
  }
  return e;
}

ExprPtr Parser::parse_unary(bool with_filter) {
  ExprPtr e;
  if (at_op("-") || at_op("+")) {
    const Token& at = next();
    e = make(ExprKind::Unary, at);
    e->name = at.text;
    e->a = parse_unary(false);
  } else {
    e = parse_primary();
  }
  e = parse_postfix(std::move(e));
  return with_filter ? parse_filters(std::move(e)) : std::move(e);
}

ExprPtr Parser::parse_primary() {
  const Token& t = peek();
  switch (t.type) {
    case Tok::Name: {
      next();
      auto e = make(ExprKind::Literal, t);
      if (t.text == "true" || t.text == "True") {
        e->value = Value::boolean(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = Value::boolean(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = ExprKind::Name;
        e->name = t.text;
      }
      return e;
    }
    case Tok::String: {
      auto e = make(ExprKind::Literal, t);
      std::string s;
      while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
      e->value = Value::string(std::move(s));
      return e;
    }
    case Tok::Int:
    case Tok::Float: {
      next();
      auto e = make(ExprKind::Literal, t);
      e->value = t.type == Tok::Int ? Value::integer(std::strtoll(t.text.c_str(), nullptr, 10))
                                    : Value::number(std::strtod(t.text.c_str(), nullptr));
      return e;
    }
    case Tok::Op:
      if (t.text == "(") {
        next();
        if (skip_op(")")) return make(ExprKind::ListLit, t);  // empty tuple
        ExprPtr e = parse_tuple_or_expr();
        expect_op(")");
        return e;
      }
      if (t.text == "[") {
        next();
        auto e = make(ExprKind::ListLit, t);
        while (!skip_op("]")) {
          e->items.push_back(parse_expr());
          if (!at_op("]")) expect_op(",");
        }
        return e;
      }
      if (t.text == "{") {
        next();
        auto e = make(ExprKind::DictLit, t);
        while (!skip_op("}")) {
          e->items.push_back(parse_expr());
          expect_op(":");
          e->items.push_back(parse_expr());
          if (!at_op("}")) expect_op(",");
        }
        return e;
      }
      break;
    default: break;
  }
  fail(t, "unexpected " + describe(t) + " in expression");
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
  for (;;) {
    const Token& at = peek();
    if (at_op(".")) {
      next();
      if (peek().type == Tok::Int) {
        auto idx = make(ExprKind::Index, at);
        idx->a = std::move(e);
        idx->b = parse_primary();
        e = std::move(idx);
        continue;
      }
      auto attr = make(ExprKind::Attr, at);
      attr->name = expect_name();
      attr->a = std::move(e);
      e = std::move(attr);
    } else if (at_op("[")) {
      next();
      e = parse_subscript(std::move(e));
    } else if (at_op("(")) {
      next();
      auto call = make(ExprKind::Call, at);
      call->a = std::move(e);
      parse_call_args(*call);
      e = std::move(call);
    } else {
      return e;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr e) {
  const Token& at = peek();
  ExprPtr parts[3];
  int n = 0;
  bool slice = false;
  for (;;) {
    if (!at_op(":") && !at_op("]")) parts[n] = parse_expr();
    if (skip_op(":")) {
      slice = true;
      if (++n > 2) fail(peek(), "too many ':' in slice");
      continue;
    }
    expect_op("]");
    break;
  }
  if (!slice) {
    if (!parts[0]) fail(at, "empty subscript");
    auto idx = make(ExprKind::Index, at);
    idx->a = std::move(e);
    idx->b = std::move(parts[0]);
    return idx;
  }
  auto sl = make(ExprKind::Slice, at);
  sl->a = std::move(e);
  for (auto& p : parts) sl->items.push_back(std::move(p));
  return sl;
}

void Parser::parse_call_args(Expr& call) {
  while (!skip_op(")")) {
    if (peek().type == Tok::Name && at_op("=", 1)) {
      std::string name = next().text;
      next();
      call.kwargs.emplace_back(name, parse_expr());
    } else {
      call.items.push_back(parse_expr());
    }
    if (!at_op(")")) expect_op(",");
  }
}

ExprPtr Parser::parse_filter(ExprPtr input) {
  const Token& at = peek();
  auto f = make(ExprKind::Filter, at);
  f->name = expect_name();
  while (at_op(".")) {  // dotted filter names
    next();
    f->name += "." + expect_name();
  }
  if (!has_filter(f->name)) fail(at, "unknown filter '" + f->name + "'");
  f->a = std::move(input);
  if (skip_op("(")) parse_call_args(*f);
  return f;
}

ExprPtr Parser::parse_filters(ExprPtr e) {
  for (;;) {
    if (skip_op("|")) {
      e = parse_filter(std::move(e));
    } else if (at_name("is")) {
      const Token& at = next();
      auto t = make(ExprKind::Test, at);
      t->negated = skip_name("not");
      const Token& name_at = peek();
      t->name = expect_name();
      if (!has_test(t->name)) fail(name_at, "unknown test '" + t->name + "'");
      t->a = std::move(e);
      const Token& n = peek();
      if (skip_op("(")) {
        parse_call_args(*t);
      } else if ((n.type == Tok::Name || n.type == Tok::String || n.type == Tok::Int ||
                  n.type == Tok::Float || at_op("[") || at_op("{")) &&
                 !at_name("else") && !at_name("or") && !at_name("and") && !at_name("if") &&
                 !at_name("in") && !at_name("not") && !at_name("is")) {
        t->items.push_back(parse_postfix(parse_primary()));
      }
      e = std::move(t);
    } else if (at_op("(")) {
      const Token& at = next();
      auto call = make(ExprKind::Call, at);
      call->a = std::move(e);
      parse_call_args(*call);
      e = std::move(call);
    } else {
      return e;
    }
  }
}

}  // namespace tessera::jinja::detail
