// Statement half of the Jinja evaluator: output, if, for (with loop.*), set, macro, call,
// filter blocks, break/continue.
#include "runtime/jinja_eval.h"

#include "runtime/jinja_eval_impl.h"
#include "runtime/jinja_parser.h"

namespace tessera::jinja {

const Value* Scope::lookup(const std::string& name) const {
  for (const Scope* s = this; s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return &it->second;
  }
  return nullptr;
}

Template::Template(const std::string& source, const LexOptions& options)
    : body_(std::make_shared<const Body>(parse(source, options))) {}

std::string Template::render(const Value& context) const {
  auto globals = std::make_shared<Scope>();
  install_globals(*globals);
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  if (context.is_mapping())
    for (auto& [k, v] : context.dict->entries) top->vars[k] = v;
  std::string out;
  detail::Evaluator ev(body_);
  ev.exec(*body_, top, out);
  return out;
}

namespace detail {

namespace {
ScopePtr child_of(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}
[[noreturn]] void fail_at(const Stmt& s, const std::string& what) {
  throw UserError("chat template: line " + std::to_string(s.line) + ", column " +
                  std::to_string(s.col) + ": " + what);
}
}  // namespace

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::Undefined: return {};
    case Kind::List: return *v.list;
    case Kind::Dict: {
      List keys;
      for (auto& [k, x] : v.dict->entries) keys.push_back(Value::string(k));
      return keys;
    }
    case Kind::String: {
      List chars;
      for (auto& c : utf8_chars(v.s)) chars.push_back(Value::string(c));
      return chars;
    }
    default: throw EvalError("'" + v.type_name() + "' object is not iterable");
  }
}

Flow Evaluator::exec(const Body& body, const ScopePtr& scope, std::string& out) {
  for (auto& s : body) {
    Flow f = exec_one(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Flow Evaluator::exec_one(const Stmt& s, const ScopePtr& scope, std::string& out) {
  switch (s.kind) {
    case StmtKind::Text: out += s.text; return Flow::Normal;
    case StmtKind::Output: out += to_str(eval(*s.expr, scope)); return Flow::Normal;
    case StmtKind::If:
      return exec(eval(*s.expr, scope).truthy() ? s.body : s.else_body, scope, out);
    case StmtKind::For: return exec_for(s, scope, out);
    case StmtKind::Set: exec_set(s, scope); return Flow::Normal;
    case StmtKind::Macro: scope->vars[s.text] = make_macro(s, scope, nullptr); return Flow::Normal;
    case StmtKind::CallBlock: {
      const Expr& call = *s.expr;
      Value callee = eval(*call.a, scope);
      if (!callee.is_callable()) fail_at(s, "{% call %} target is not callable");
      CallArgs args = eval_args(call, scope);
      args.kw.emplace_back("caller", make_macro(s, scope, &s.body));
      out += to_str((*callee.fn)(args));
      return Flow::Normal;
    }
    case StmtKind::FilterBlock: {
      std::string inner;
      exec(s.body, child_of(scope), inner);
      // Evaluate the filter chain bottom-up with the body's text as the innermost input.
      std::vector<const Expr*> chain;
      for (const Expr* f = s.expr.get(); f; f = f->a.get()) chain.push_back(f);
      Value v = Value::string(inner);
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        CallArgs args = eval_args(**it, scope);
        try {
          v = apply_filter((*it)->name, v, args);
        } catch (const EvalError& e) {
          fail_at(s, e.what());
        }
      }
      out += to_str(v);
      return Flow::Normal;
    }
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

Flow Evaluator::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  List items;
  try {
    items = iterate(eval(*s.expr, scope));
  } catch (const EvalError& e) {
    fail_at(s, e.what());
  }
  auto loop_scope = child_of(scope);
  auto bind = [&](const ScopePtr& sc, const Value& item) {
    if (s.targets.size() == 1) {
      sc->vars[s.targets[0]] = item;
      return;
    }
    List parts = item.is_list() ? *item.list : iterate(item);
    if (parts.size() != s.targets.size())
      fail_at(s, "cannot unpack " + std::to_string(parts.size()) + " values into " +
                     std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < parts.size(); ++k) sc->vars[s.targets[k]] = parts[k];
  };
  if (s.cond) {  // `for x in xs if cond`: filter first, so loop.* counts kept items only
    List kept;
    auto test_scope = child_of(scope);
    for (auto& item : items) {
      bind(test_scope, item);
      if (eval(*s.cond, test_scope).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) return exec(s.else_body, scope, out);
  const int64_t n = int64_t(items.size());
  for (int64_t k = 0; k < n; ++k) {
    Value loop = Value::make_dict();
    Dict& d = *loop.dict;
    d.set("index", Value::integer(k + 1));
    d.set("index0", Value::integer(k));
    d.set("revindex", Value::integer(n - k));
    d.set("revindex0", Value::integer(n - k - 1));
    d.set("first", Value::boolean(k == 0));
    d.set("last", Value::boolean(k == n - 1));
    d.set("length", Value::integer(n));
    d.set("previtem", k > 0 ? items[size_t(k - 1)] : Value::undefined("previtem"));
    d.set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value::undefined("nextitem"));
    d.set("cycle", Value::callable([k](CallArgs& a) {
      if (a.pos.empty()) throw EvalError("loop.cycle needs at least one argument");
      return a.pos[size_t(k) % a.pos.size()];
    }));
    loop_scope->vars["loop"] = loop;
    bind(loop_scope, items[size_t(k)]);
    if (exec(s.body, loop_scope, out) == Flow::Break) break;
  }
  return Flow::Normal;
}

void Evaluator::exec_set(const Stmt& s, const ScopePtr& scope) {
  Value v;
  if (s.expr) {
    v = eval(*s.expr, scope);
  } else {
    std::string inner;
    exec(s.body, scope, inner);
    v = Value::string(inner);
  }
  if (!s.text.empty()) {  // set ns.attr = v
    const Value* ns = scope->lookup(s.targets[0]);
    if (!ns || ns->kind != Kind::Namespace)
      fail_at(s, "cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
    ns->dict->set(s.text, v);
    return;
  }
  if (s.targets.size() == 1) {
    scope->vars[s.targets[0]] = v;
    return;
  }
  List parts;
  try {
    parts = iterate(v);
  } catch (const EvalError& e) {
    fail_at(s, e.what());
  }
  if (parts.size() != s.targets.size()) fail_at(s, "wrong number of values to unpack in set");
  for (size_t k = 0; k < parts.size(); ++k) scope->vars[s.targets[k]] = parts[k];
}

// A macro (or the body of a {% call %} block, which becomes `caller`) as a Callable.
Value Evaluator::make_macro(const Stmt& s, const ScopePtr& scope, const Body* caller_body) {
  const Stmt* def = &s;
  const Body* body = caller_body ? caller_body : &s.body;
  std::weak_ptr<Scope> weak = scope;  // macros live in the scope they close over
  return Value::callable([this, def, body, weak](CallArgs& args) -> Value {
    ScopePtr parent = weak.lock();
    auto local = std::make_shared<Scope>();
    local->parent = parent;
    std::vector<bool> bound(def->params.size(), false);
    for (size_t k = 0; k < args.pos.size(); ++k) {
      if (k >= def->params.size()) throw EvalError("macro got too many positional arguments");
      local->vars[def->params[k].name] = args.pos[k];
      bound[k] = true;
    }
    for (auto& [name, v] : args.kw) {
      bool known = false;
      for (size_t k = 0; k < def->params.size(); ++k)
        if (def->params[k].name == name) {
          local->vars[name] = v;
          bound[k] = known = true;
        }
      if (!known && name == "caller") local->vars[name] = v;
      else if (!known) throw EvalError("macro got an unexpected keyword argument '" + name + "'");
    }
    for (size_t k = 0; k < def->params.size(); ++k) {
      if (bound[k]) continue;
      const Param& p = def->params[k];
      local->vars[p.name] = p.default_value ? eval(*p.default_value, local) : Value::undefined(p.name);
    }
    std::string out;
    exec(*body, local, out);
    return Value::string(out);
  });
}

}  // namespace detail
}  // namespace tessera::jinja
