// Expression half of the Jinja evaluator: names, literals, attribute/index/slice access,
// calls, filters, tests and operators, with Python semantics.
#include <cmath>

#include "runtime/jinja_eval_impl.h"

namespace tessera::jinja::detail {

Value Evaluator::eval(const Expr& e, const ScopePtr& scope) {
  try {
    return eval_inner(e, scope);
  } catch (const EvalError& err) {
    throw UserError("chat template: line " + std::to_string(e.line) + ", column " +
                    std::to_string(e.col) + ": " + err.what());
  }
}

CallArgs Evaluator::eval_args(const Expr& e, const ScopePtr& scope) {
  CallArgs args;
  for (auto& a : e.items) args.pos.push_back(eval(*a, scope));
  for (auto& [k, a] : e.kwargs) args.kw.emplace_back(k, eval(*a, scope));
  return args;
}

Value Evaluator::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_mapping()) {
    if (const Value* v = obj.dict->find(name)) return *v;
    if (obj.kind == Kind::Namespace) return Value::undefined(name);
  }
  return get_method(obj, name);
}

static int64_t normalise_index(int64_t i, size_t n) { return i < 0 ? i + int64_t(n) : i; }

Value Evaluator::get_item(const Value& obj, const Value& key) {
  if (obj.is_mapping()) {
    if (!key.is_string()) return Value::undefined();
    if (const Value* v = obj.dict->find(key.s)) return *v;
    return Value::undefined(key.s);
  }
  if (key.is_string()) return get_attr(obj, key.s);
  if ((obj.is_list() || obj.is_string()) && (key.kind == Kind::Int || key.kind == Kind::Bool)) {
    int64_t raw = key.kind == Kind::Bool ? key.b : key.i;
    if (obj.is_list()) {
      int64_t i = normalise_index(raw, obj.list->size());
      if (i < 0 || i >= int64_t(obj.list->size())) return Value::undefined();
      return (*obj.list)[size_t(i)];
    }
    auto chars = utf8_chars(obj.s);
    int64_t i = normalise_index(raw, chars.size());
    if (i < 0 || i >= int64_t(chars.size())) return Value::undefined();
    return Value::string(chars[size_t(i)]);
  }
  if (obj.is_undefined()) return Value::undefined();
  throw EvalError("cannot index " + obj.type_name() + " with " + key.type_name());
}

Value Evaluator::eval_slice(const Expr& e, const ScopePtr& scope) {
  Value obj = eval(*e.a, scope);
  int64_t part[3] = {0, 0, 1};
  bool given[3] = {false, false, false};
  for (int k = 0; k < 3; ++k) {
    if (!e.items[size_t(k)]) continue;
    Value v = eval(*e.items[size_t(k)], scope);
    if (v.is_none()) continue;
    if (v.kind != Kind::Int) throw EvalError("slice indices must be integers");
    part[k] = v.i;
    given[k] = true;
  }
  int64_t step = part[2];
  if (step == 0) throw EvalError("slice step cannot be zero");
  List items;
  std::vector<std::string> chars;
  if (obj.is_list()) {
    items = *obj.list;
  } else if (obj.is_string()) {
    chars = utf8_chars(obj.s);
  } else if (!obj.is_undefined()) {
    throw EvalError("cannot slice " + obj.type_name());
  }
  const int64_t n = int64_t(obj.is_string() ? chars.size() : items.size());
  auto clamp = [&](int64_t i, bool is_given, bool is_start) {
    if (!is_given) return step > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : int64_t(-1));
    if (i < 0) i += n;
    if (step > 0) return std::min(std::max(i, int64_t(0)), n);
    return std::min(std::max(i, int64_t(-1)), n - 1);
  };
  int64_t start = clamp(part[0], given[0], true), stop = clamp(part[1], given[1], false);
  List out_items;
  std::string out_str;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (obj.is_string()) out_str += chars[size_t(i)];
    else out_items.push_back(items[size_t(i)]);
  }
  if (obj.is_string()) return Value::string(out_str);
  return Value::make_list(std::move(out_items));
}

Value Evaluator::eval_inner(const Expr& e, const ScopePtr& scope) {
  switch (e.kind) {
    case ExprKind::Literal: return e.value;
    case ExprKind::Name: {
      const Value* v = scope->lookup(e.name);
      return v ? *v : Value::undefined(e.name);
    }
    case ExprKind::ListLit: {
      List items;
      for (auto& x : e.items) items.push_back(eval(*x, scope));
      return Value::make_list(std::move(items));
    }
    case ExprKind::DictLit: {
      Value d = Value::make_dict();
      for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
        Value key = eval(*e.items[k], scope);
        if (!key.is_string()) throw EvalError("dict keys must be strings");
        d.dict->set(key.s, eval(*e.items[k + 1], scope));
      }
      return d;
    }
    case ExprKind::Attr: return get_attr(eval(*e.a, scope), e.name);
    case ExprKind::Index: {
      Value obj = eval(*e.a, scope);
      return get_item(obj, eval(*e.b, scope));
    }
    case ExprKind::Slice: return eval_slice(e, scope);
    case ExprKind::Call: {
      Value callee = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      if (!callee.is_callable()) {
        std::string what = e.a->kind == ExprKind::Name ? "'" + e.a->name + "'"
                           : e.a->kind == ExprKind::Attr ? "'" + e.a->name + "'"
                                                          : "value";
        throw EvalError(what + " is not callable (" + callee.type_name() + ")");
      }
      return (*callee.fn)(args);
    }
    case ExprKind::Filter: {
      Value input = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      return apply_filter(e.name, input, args);
    }
    case ExprKind::Test: {
      Value v = eval(*e.a, scope);
      CallArgs args = eval_args(e, scope);
      return Value::boolean(apply_test(e.name, v, args) != e.negated);
    }
    case ExprKind::Unary: {
      Value v = eval(*e.a, scope);
      if (e.name == "not") return Value::boolean(!v.truthy());
      if (v.kind == Kind::Int) return Value::integer(e.name == "-" ? -v.i : v.i);
      if (v.kind == Kind::Float) return Value::number(e.name == "-" ? -v.f : v.f);
      if (v.kind == Kind::Bool) return Value::integer(e.name == "-" ? -int64_t(v.b) : v.b);
      throw EvalError("bad operand type for unary " + e.name + ": " + v.type_name());
    }
    case ExprKind::Binary: return eval_binary(e, scope);
    case ExprKind::Ternary:
      if (eval(*e.b, scope).truthy()) return eval(*e.a, scope);
      return e.c ? eval(*e.c, scope) : Value::undefined();
  }
  return Value::undefined();
}

static bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::String:
      if (!item.is_string()) throw EvalError("'in <string>' requires string as left operand");
      return container.s.find(item.s) != std::string::npos;
    case Kind::List:
      for (auto& x : *container.list)
        if (equals(x, item)) return true;
      return false;
    case Kind::Dict:
    case Kind::Namespace: return item.is_string() && container.dict->find(item.s) != nullptr;
    case Kind::Undefined: return false;
    default: throw EvalError("argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value Evaluator::eval_binary(const Expr& e, const ScopePtr& scope) {
  const std::string& op = e.name;
  Value a = eval(*e.a, scope);
  if (op == "and") return a.truthy() ? eval(*e.b, scope) : a;
  if (op == "or") return a.truthy() ? a : eval(*e.b, scope);
  Value b = eval(*e.b, scope);
  if (op == "==") return Value::boolean(equals(a, b));
  if (op == "!=") return Value::boolean(!equals(a, b));
  if (op == "<") return Value::boolean(less(a, b));
  if (op == ">") return Value::boolean(less(b, a));
  if (op == "<=") return Value::boolean(!less(b, a));
  if (op == ">=") return Value::boolean(!less(a, b));
  if (op == "in") return Value::boolean(contains(b, a));
  if (op == "not in") return Value::boolean(!contains(b, a));
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  return arithmetic(op, a, b);
}

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  auto bad = [&]() -> EvalError {
    return EvalError("unsupported operand types for " + op + ": '" + a.type_name() + "' and '" +
                     b.type_name() + "'");
  };
  bool an = a.is_number() || a.kind == Kind::Bool, bn = b.is_number() || b.kind == Kind::Bool;
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_list() && b.is_list()) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(out));
    }
    if ((a.is_string() && bn) || (an && b.is_string()))  // lenient, as @huggingface/jinja
      return Value::string(to_str(a) + to_str(b));
  }
  if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
    const Value& seq = (a.is_string() || a.is_list()) ? a : b;
    const Value& count = &seq == &a ? b : a;
    if (count.kind != Kind::Int) throw bad();
    if (seq.is_string()) {
      std::string out;
      for (int64_t k = 0; k < count.i; ++k) out += seq.s;
      return Value::string(out);
    }
    List out;
    for (int64_t k = 0; k < count.i; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
    return Value::make_list(std::move(out));
  }
  if (!an || !bn) throw bad();
  bool ints = a.kind != Kind::Float && b.kind != Kind::Float;
  int64_t x = a.kind == Kind::Bool ? a.b : a.i, y = b.kind == Kind::Bool ? b.b : b.i;
  double fx = a.as_double(), fy = b.as_double();
  if (op == "+") return ints ? Value::integer(x + y) : Value::number(fx + fy);
  if (op == "-") return ints ? Value::integer(x - y) : Value::number(fx - fy);
  if (op == "*") return ints ? Value::integer(x * y) : Value::number(fx * fy);
  if (op == "/" || op == "//" || op == "%") {
    if (fy == 0) throw EvalError(op == "%" ? "modulo by zero" : "division by zero");
    if (op == "/") return Value::number(fx / fy);
    if (op == "//") return ints ? Value::integer(floor_div(x, y)) : Value::number(std::floor(fx / fy));
    if (ints) return Value::integer(x - floor_div(x, y) * y);
    double r = std::fmod(fx, fy);
    if (r != 0 && ((r < 0) != (fy < 0))) r += fy;
    return Value::number(r);
  }
  if (op == "**") {
    if (ints && y >= 0) {
      int64_t r = 1;
      for (int64_t k = 0; k < y; ++k) r *= x;
      return Value::integer(r);
    }
    return Value::number(std::pow(fx, fy));
  }
  throw bad();
}

}  // namespace tessera::jinja::detail
