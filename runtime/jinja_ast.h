// Syntax tree of tessera's Jinja interpreter.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/jinja_value.h"

namespace tessera::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Literal,    // value
  Name,       // name
  ListLit,    // items (also tuples)
  DictLit,    // items: key, value, key, value, ...
  Attr,       // a.name
  Index,      // a[b]
  Slice,      // a[items[0]:items[1]:items[2]] (null entries for omitted parts)
  Call,       // a(items..., kwargs...)
  Filter,     // a | name(items..., kwargs...)   (a may be null in a {% filter %} block)
  Test,       // a is [not] name(items...)       (negated)
  Unary,      // op a        (op: "not", "-", "+")
  Binary,     // a op b      (op: arithmetic, comparison, "in", "not in", "~", "and", "or")
  Ternary,    // a if b else c (c may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  Value value;
  std::string name;  // Name, Attr, Filter, Test; op for Unary/Binary
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  Text,      // text
  Output,    // {{ expr }}
  If,        // if expr: body else else_body (elif = nested If in else_body)
  For,       // for targets in expr [if cond]: body else else_body
  Set,       // set targets = expr | set targets %}body{% endset | set ns.attr = expr
  Macro,     // macro name(params) body
  CallBlock, // call(params) expr: body (the body becomes `caller`)
  FilterBlock, // filter expr(filter chain with null input) body
  Break,
  Continue,
};

struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;                  // Text; Macro name; Set: attribute for ns.attr
  ExprPtr expr;                      // Output, If cond, For iterable, Set value, CallBlock call
  ExprPtr cond;                      // For filter condition
  std::vector<std::string> targets;  // For / Set names
  std::vector<Param> params;         // Macro / CallBlock
  Body body, else_body;
};

}  // namespace tessera::jinja
