// The value type of tessera's Jinja interpreter (used for chat templates): Python-like
// semantics for None, bool, int, float, str, list and (insertion-ordered) dict, plus Jinja's
// Undefined, namespace() objects and callables (macros, builtins, bound methods).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/error.h"

namespace tessera::jinja {

struct Value;
using List = std::vector<Value>;

// Insertion-ordered string-keyed map, like a Python dict with str keys.
struct Dict {
  std::vector<std::pair<std::string, Value>> entries;
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional then keyword.
struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // The argument named `name`, else positional `index`, else nullptr.
  const Value* get(size_t index, const std::string& name) const;
};

using Function = std::function<Value(CallArgs&)>;

// A run-time error inside a template; the evaluator adds the template position and turns it
// into a UserError.
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// raise_exception(msg) from a template: a UserError whose message is exactly msg.
struct RaisedError : UserError {
  using UserError::UserError;
};

enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

struct Value {
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                  // String; for Undefined, the name that was looked up
  std::shared_ptr<List> list;     // List (tuples are lists too)
  std::shared_ptr<Dict> dict;     // Dict and Namespace (shared: reference semantics)
  std::shared_ptr<Function> fn;   // Callable

  Value() = default;
  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List items = {});
  static Value make_dict();
  static Value make_namespace();
  static Value callable(Function f);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_mapping() const { return kind == Kind::Dict || kind == Kind::Namespace; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float; }
  bool is_callable() const { return kind == Kind::Callable; }

  bool truthy() const;
  double as_double() const;  // Int, Float or Bool
  std::string type_name() const;
};

// Python's str(v) as Jinja prints it ({{ v }}): None, True/False, 1.0, ['a', 1]; Undefined
// prints as the empty string.
std::string to_str(const Value& v);
// Python's repr(v): strings quoted with '...'.
std::string repr(const Value& v);
// Python's == between two values (1 == 1.0, deep list/dict comparison).
bool equals(const Value& a, const Value& b);
// Python's <: numbers and strings (byte-wise), else a UserError.
bool less(const Value& a, const Value& b);

// JSON <-> Value. Objects keep their key order.
Value from_json(const nlohmann::ordered_json& j);

struct JsonStyle {
  int indent = -1;                 // < 0: single line
  std::string item_sep = ", ";     // Python json.dumps defaults (", " / ",\n" with indent)
  std::string key_sep = ": ";
  bool sort_keys = false;
};
// Python's json.dumps(v, ensure_ascii=False, ...) as used by Hugging Face's tojson.
std::string to_json_text(const Value& v, const JsonStyle& style);

// The characters (code points, as UTF-8 strings) of s; invalid bytes are single chars.
std::vector<std::string> utf8_chars(const std::string& s);

// Python's float repr: shortest round-trip digits, always with '.0' or an exponent.
std::string float_repr(double d);

}  // namespace tessera::jinja
