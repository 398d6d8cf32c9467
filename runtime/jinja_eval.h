// Evaluator of tessera's Jinja interpreter: a parsed template rendered against a context.
#pragma once
#include <memory>
#include <string>
#include <unordered_map>

#include "runtime/jinja_ast.h"
#include "runtime/jinja_lexer.h"
#include "runtime/jinja_value.h"

namespace tessera::jinja {

// A compiled template. Thread-safe to render concurrently (render has no shared state).
class Template {
 public:
  // Throws UserError("chat template: line L, column C: ...") on a syntax error.
  explicit Template(const std::string& source, const LexOptions& options = {});

  // Renders with `context` (a Dict value: variable name -> value) on top of the globals
  // (namespace, range, raise_exception, strftime_now, ...). Run-time errors are UserErrors;
  // raise_exception(msg) throws RaisedError(msg).
  std::string render(const Value& context) const;

 private:
  std::shared_ptr<const Body> body_;
};

// Variables visible at one point of a template. Child scopes (for loops, macro calls) see
// their parents' variables; assignments go to the innermost scope.
struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
  const Value* lookup(const std::string& name) const;
};
using ScopePtr = std::shared_ptr<Scope>;

// Builtins (jinja_filters.cpp, jinja_builtins.cpp). They throw EvalError on bad input.
Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);
bool has_test(const std::string& name);
bool has_filter(const std::string& name);
// obj.name for a built-in method of a string, dict or list (a bound Callable), else Undefined.
Value get_method(const Value& obj, const std::string& name);
// Adds the global functions to `scope`.
void install_globals(Scope& scope);

}  // namespace tessera::jinja
