// Internal to the Jinja evaluator: statement execution (jinja_eval.cpp) and expression
// evaluation (jinja_eval_expr.cpp).
#pragma once
#include <memory>
#include <string>

#include "runtime/jinja_eval.h"

namespace tessera::jinja::detail {

enum class Flow { Normal, Break, Continue };

class Evaluator {
 public:
  explicit Evaluator(std::shared_ptr<const Body> body) : body_(std::move(body)) {}

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out);
  Value eval(const Expr& e, const ScopePtr& scope);

  // Index / attribute access shared with the builtins.
  static Value get_attr(const Value& obj, const std::string& name);
  static Value get_item(const Value& obj, const Value& key);

 private:
  Flow exec_one(const Stmt& s, const ScopePtr& scope, std::string& out);
  Flow exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_set(const Stmt& s, const ScopePtr& scope);
  Value make_macro(const Stmt& s, const ScopePtr& scope, const Body* caller_body);

  Value eval_inner(const Expr& e, const ScopePtr& scope);
  Value eval_binary(const Expr& e, const ScopePtr& scope);
  Value eval_slice(const Expr& e, const ScopePtr& scope);
  CallArgs eval_args(const Expr& e, const ScopePtr& scope);

  std::shared_ptr<const Body> body_;  // keeps macro bodies alive while rendering
};

// Python's iteration of a value: list items, dict keys, string characters; Undefined is empty.
List iterate(const Value& v);

// Python's binary arithmetic (+ - * / // % **) on values.
Value arithmetic(const std::string& op, const Value& a, const Value& b);

}  // namespace tessera::jinja::detail
