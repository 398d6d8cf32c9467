// Internal to the Jinja parser: the recursive-descent parser shared by the statement
// (jinja_parser.cpp) and expression (jinja_parse_expr.cpp) halves.
#pragma once
#include <string>
#include <vector>

#include "runtime/jinja_ast.h"
#include "runtime/jinja_lexer.h"

namespace tessera::jinja::detail {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_template();

  // Expressions (jinja_parse_expr.cpp).
  ExprPtr parse_expr(bool allow_cond = true);
  ExprPtr parse_tuple_or_expr(bool allow_cond = true);  // a, b -> list literal

 private:
  // Statements (jinja_parser.cpp).
  Body parse_until(const std::vector<std::string>& stops, std::string* found);
  StmtPtr parse_statement();
  StmtPtr parse_if(const Token& at);
  StmtPtr parse_for(const Token& at);
  StmtPtr parse_set(const Token& at);
  StmtPtr parse_macro(const Token& at, bool is_call);
  StmtPtr parse_filter_block(const Token& at);
  std::vector<Param> parse_params();
  void expect_block_end();

  // Expression levels.
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr e);
  ExprPtr parse_filters(ExprPtr e);
  ExprPtr parse_filter(ExprPtr input);
  ExprPtr parse_subscript(ExprPtr e);
  void parse_call_args(Expr& call);

  // Token helpers.
  const Token& peek(size_t ahead = 0) const;
  const Token& next();
  bool at_op(const char* op, size_t ahead = 0) const;
  bool at_name(const char* name, size_t ahead = 0) const;
  bool skip_op(const char* op);
  bool skip_name(const char* name);
  void expect_op(const char* op);
  std::string expect_name();
  [[noreturn]] void fail(const Token& t, const std::string& what) const;
  ExprPtr make(ExprKind kind, const Token& at) const;

  std::vector<Token> toks_;
  size_t idx_ = 0;
};

std::string describe(const Token& t);

}  // namespace tessera::jinja::detail
