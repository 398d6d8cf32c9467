// Jinja tests (`x is name`), methods of strings and dicts (x.strip(), d.items(), ...) and
// global functions (namespace, range, raise_exception, strftime_now).
#include <ctime>
#include <functional>
#include <map>

#include "runtime/jinja_eval_impl.h"
#include "runtime/jinja_strings.h"

namespace tessera::jinja {

namespace {

using Test = std::function<bool(const Value&, CallArgs&)>;

const Value& need(CallArgs& a, size_t i, const char* what) {
  if (i >= a.pos.size()) throw EvalError(std::string(what) + " needs an argument");
  return a.pos[i];
}

const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> table = [] {
    std::map<std::string, Test> t;
    t["defined"] = [](const Value& v, CallArgs&) { return !v.is_undefined(); };
    t["undefined"] = [](const Value& v, CallArgs&) { return v.is_undefined(); };
    t["none"] = [](const Value& v, CallArgs&) { return v.is_none(); };
    t["string"] = [](const Value& v, CallArgs&) { return v.is_string(); };
    t["mapping"] = [](const Value& v, CallArgs&) { return v.is_dict(); };
    t["number"] = [](const Value& v, CallArgs&) { return v.is_number(); };
    t["integer"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Int; };
    t["float"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Float; };
    t["boolean"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Bool; };
    t["true"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Bool && v.b; };
    t["false"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Bool && !v.b; };
    t["iterable"] = [](const Value& v, CallArgs&) { return v.is_list() || v.is_dict() || v.is_string(); };
    t["sequence"] = t["iterable"];
    t["callable"] = [](const Value& v, CallArgs&) { return v.is_callable(); };
    t["lower"] = [](const Value& v, CallArgs&) { return v.is_string() && strings::lower(v.s) == v.s; };
    t["upper"] = [](const Value& v, CallArgs&) { return v.is_string() && strings::upper(v.s) == v.s; };
    t["odd"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Int && v.i % 2 != 0; };
    t["even"] = [](const Value& v, CallArgs&) { return v.kind == Kind::Int && v.i % 2 == 0; };
    t["divisibleby"] = [](const Value& v, CallArgs& a) {
      const Value& d = need(a, 0, "divisibleby");
      return d.kind == Kind::Int && d.i != 0 && v.kind == Kind::Int && v.i % d.i == 0;
    };
    t["equalto"] = [](const Value& v, CallArgs& a) { return equals(v, need(a, 0, "equalto")); };
    t["eq"] = t["equalto"];
    t["=="] = t["equalto"];
    t["sameas"] = t["equalto"];
    t["ne"] = [](const Value& v, CallArgs& a) { return !equals(v, need(a, 0, "ne")); };
    t["!="] = t["ne"];
    t["lt"] = [](const Value& v, CallArgs& a) { return less(v, need(a, 0, "lt")); };
    t["<"] = t["lt"];
    t["lessthan"] = t["lt"];
    t["gt"] = [](const Value& v, CallArgs& a) { return less(need(a, 0, "gt"), v); };
    t[">"] = t["gt"];
    t["greaterthan"] = t["gt"];
    t["le"] = [](const Value& v, CallArgs& a) { return !less(need(a, 0, "le"), v); };
    t["<="] = t["le"];
    t["ge"] = [](const Value& v, CallArgs& a) { return !less(v, need(a, 0, "ge")); };
    t[">="] = t["ge"];
    t["in"] = [](const Value& v, CallArgs& a) {
      const Value& c = need(a, 0, "in");
      if (c.is_string()) return v.is_string() && c.s.find(v.s) != std::string::npos;
      if (c.is_mapping()) return v.is_string() && c.dict->find(v.s) != nullptr;
      for (auto& x : detail::iterate(c))
        if (equals(x, v)) return true;
      return false;
    };
    return t;
  }();
  return table;
}

std::string opt_chars(CallArgs& a) {
  const Value* c = a.get(0, "chars");
  return c && c->is_string() ? c->s : "";
}

bool prefix_match(const Value& self, CallArgs& a, bool at_start) {
  const Value& p = need(a, 0, at_start ? "startswith" : "endswith");
  auto one = [&](const std::string& x) {
    if (x.size() > self.s.size()) return false;
    return at_start ? self.s.compare(0, x.size(), x) == 0
                    : self.s.compare(self.s.size() - x.size(), x.size(), x) == 0;
  };
  if (p.is_list()) {
    for (auto& x : *p.list)
      if (x.is_string() && one(x.s)) return true;
    return false;
  }
  if (!p.is_string()) throw EvalError("startswith/endswith needs a string");
  return one(p.s);
}

Value string_method(const Value& self, const std::string& name, CallArgs& a) {
  const std::string& s = self.s;
  if (name == "strip") return Value::string(strings::strip(s, opt_chars(a)));
  if (name == "lstrip") return Value::string(strings::lstrip(s, opt_chars(a)));
  if (name == "rstrip") return Value::string(strings::rstrip(s, opt_chars(a)));
  if (name == "upper") return Value::string(strings::upper(s));
  if (name == "lower") return Value::string(strings::lower(s));
  if (name == "title") return Value::string(strings::python_title(s));
  if (name == "capitalize") return Value::string(strings::capitalize(s));
  if (name == "startswith") return Value::boolean(prefix_match(self, a, true));
  if (name == "endswith") return Value::boolean(prefix_match(self, a, false));
  if (name == "replace") {
    const Value* count = a.get(2, "count");
    return Value::string(strings::replace(s, to_str(need(a, 0, "replace")), to_str(need(a, 1, "replace")),
                                          count && count->kind == Kind::Int ? count->i : -1));
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = a.get(0, "sep");
    const Value* maxsplit = a.get(1, "maxsplit");
    bool none = !sep || sep->is_none();
    if (!none && sep->s.empty()) throw EvalError("empty separator");
    List out;
    for (auto& part : strings::split(s, none ? "" : sep->s, none,
                                     maxsplit && maxsplit->kind == Kind::Int ? maxsplit->i : -1))
      out.push_back(Value::string(part));
    return Value::make_list(std::move(out));
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (auto& x : detail::iterate(need(a, 0, "join"))) {
      out += (first ? "" : s) + to_str(x);
      first = false;
    }
    return Value::string(out);
  }
  if (name == "find") {
    size_t at = s.find(to_str(need(a, 0, "find")));
    return Value::integer(at == std::string::npos ? -1 : int64_t(at));
  }
  if (name == "count") {
    std::string sub = to_str(need(a, 0, "count"));
    if (sub.empty()) return Value::integer(int64_t(utf8_chars(s).size()) + 1);
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value::integer(n);
  }
  if (name == "splitlines") {
    List out;
    for (auto& part : strings::split(s, "\n", false, -1)) out.push_back(Value::string(part));
    if (!out.empty() && out.back().s.empty()) out.pop_back();
    return Value::make_list(std::move(out));
  }
  throw EvalError("string has no method '" + name + "'");
}

Value dict_method(const Value& self, const std::string& name, CallArgs& a) {
  if (name == "items") {
    List out;
    for (auto& [k, v] : self.dict->entries) out.push_back(Value::make_list({Value::string(k), v}));
    return Value::make_list(std::move(out));
  }
  if (name == "keys") {
    List out;
    for (auto& [k, v] : self.dict->entries) out.push_back(Value::string(k));
    return Value::make_list(std::move(out));
  }
  if (name == "values") {
    List out;
    for (auto& [k, v] : self.dict->entries) out.push_back(v);
    return Value::make_list(std::move(out));
  }
  if (name == "get") {
    const Value& key = need(a, 0, "get");
    const Value* v = key.is_string() ? self.dict->find(key.s) : nullptr;
    if (v) return *v;
    const Value* dflt = a.get(1, "default");
    return dflt ? *dflt : Value::none();
  }
  throw EvalError("dict has no method '" + name + "'");
}

bool is_method(Kind kind, const std::string& name) {
  static const char* str_methods[] = {"strip", "lstrip", "rstrip", "upper", "lower", "title",
                                      "capitalize", "startswith", "endswith", "replace", "split",
                                      "rsplit", "join", "find", "count", "splitlines"};
  static const char* dict_methods[] = {"items", "keys", "values", "get"};
  if (kind == Kind::String) {
    for (const char* m : str_methods)
      if (name == m) return true;
  } else if (kind == Kind::Dict) {
    for (const char* m : dict_methods)
      if (name == m) return true;
  }
  return false;
}

}  // namespace

bool has_test(const std::string& name) { return tests().count(name) != 0; }

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  auto it = tests().find(name);
  if (it == tests().end()) throw EvalError("unknown test '" + name + "'");
  return it->second(v, args);
}

Value get_method(const Value& obj, const std::string& name) {
  if (!is_method(obj.kind, name)) return Value::undefined(name);
  return Value::callable([obj, name](CallArgs& a) {
    return obj.is_string() ? string_method(obj, name, a) : dict_method(obj, name, a);
  });
}

void install_globals(Scope& scope) {
  scope.vars["raise_exception"] = Value::callable([](CallArgs& a) -> Value {
    throw RaisedError(a.pos.empty() ? std::string("raise_exception called") : to_str(a.pos[0]));
  });
  scope.vars["namespace"] = Value::callable([](CallArgs& a) {
    Value ns = Value::make_namespace();
    for (auto& p : a.pos)
      if (p.is_mapping())
        for (auto& [k, v] : p.dict->entries) ns.dict->set(k, v);
    for (auto& [k, v] : a.kw) ns.dict->set(k, v);
    return ns;
  });
  scope.vars["dict"] = Value::callable([](CallArgs& a) {
    Value d = Value::make_dict();
    for (auto& [k, v] : a.kw) d.dict->set(k, v);
    return d;
  });
  scope.vars["range"] = Value::callable([](CallArgs& a) {
    int64_t start = 0, stop = 0, step = 1;
    auto num = [&](size_t i) {
      if (a.pos[i].kind != Kind::Int) throw EvalError("range() needs integers");
      return a.pos[i].i;
    };
    if (a.pos.size() == 1) {
      stop = num(0);
    } else if (a.pos.size() >= 2) {
      start = num(0);
      stop = num(1);
      if (a.pos.size() >= 3) step = num(2);
    } else {
      throw EvalError("range() needs an argument");
    }
    if (step == 0) throw EvalError("range() step must not be zero");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      out.push_back(Value::integer(i));
      if (out.size() > 10000000) throw EvalError("range() too large");
    }
    return Value::make_list(std::move(out));
  });
  scope.vars["strftime_now"] = Value::callable([](CallArgs& a) {
    std::string fmt = a.pos.empty() ? "%Y-%m-%d" : to_str(a.pos[0]);
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
    return Value::string(std::string(buf, n));
  });
}

}  // namespace tessera::jinja
