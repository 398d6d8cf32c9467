// Jinja filters: {{ value | name(args) }}. Semantics follow Jinja 3 and Hugging Face's
// tojson (json.dumps with ensure_ascii=False).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "runtime/jinja_eval_impl.h"
#include "runtime/jinja_strings.h"

namespace tessera::jinja {

namespace {

using detail::Evaluator;
using Filter = std::function<Value(const Value&, CallArgs&)>;

const Value* arg(CallArgs& a, size_t i, const char* name) { return a.get(i, name); }

std::string str_arg(CallArgs& a, size_t i, const char* name, const std::string& dflt) {
  const Value* v = arg(a, i, name);
  if (!v || v->is_none() || v->is_undefined()) return dflt;
  return to_str(*v);
}

bool bool_arg(CallArgs& a, size_t i, const char* name, bool dflt) {
  const Value* v = arg(a, i, name);
  return v ? v->truthy() : dflt;
}

// obj.attr for selectattr/map/sort/join attribute= arguments ("a.b" walks into dicts).
Value attr_path(const Value& obj, const std::string& path) {
  Value cur = obj;
  size_t start = 0;
  for (;;) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? Evaluator::get_item(cur, Value::integer(std::stoll(part)))
                  : Evaluator::get_attr(cur, part);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value tojson(const Value& v, CallArgs& a) {
  JsonStyle st;
  if (const Value* ind = arg(a, 0, "indent"); ind && ind->kind == Kind::Int) {
    st.indent = int(ind->i);
    st.item_sep = ",";
  }
  if (const Value* sep = arg(a, 1, "separators"); sep && sep->is_list() && sep->list->size() == 2) {
    st.item_sep = to_str((*sep->list)[0]);
    st.key_sep = to_str((*sep->list)[1]);
  }
  st.sort_keys = bool_arg(a, 2, "sort_keys", false);
  return Value::string(to_json_text(v, st));
}

Value select_items(const Value& seq, CallArgs& a, bool by_attr, bool keep) {
  List out;
  size_t first_test_arg = by_attr ? 1 : 0;
  std::string attr = by_attr ? str_arg(a, 0, "attribute", "") : "";
  bool has_test = a.pos.size() > first_test_arg;
  std::string test = has_test ? to_str(a.pos[first_test_arg]) : "";
  for (auto& item : detail::iterate(seq)) {
    Value v = by_attr ? attr_path(item, attr) : item;
    bool ok;
    if (has_test) {
      CallArgs targs;
      targs.pos.assign(a.pos.begin() + long(first_test_arg) + 1, a.pos.end());
      ok = apply_test(test, v, targs);
    } else {
      ok = v.truthy();
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::make_list(std::move(out));
}

Value map_items(const Value& seq, CallArgs& a) {
  List out;
  if (const Value* attr = a.get(99, "attribute")) {
    const Value* dflt = a.get(99, "default");
    for (auto& item : detail::iterate(seq)) {
      Value v = attr_path(item, to_str(*attr));
      out.push_back(v.is_undefined() && dflt ? *dflt : v);
    }
    return Value::make_list(std::move(out));
  }
  if (a.pos.empty()) throw EvalError("map needs a filter name or attribute=");
  std::string filter = to_str(a.pos[0]);
  CallArgs rest;
  rest.pos.assign(a.pos.begin() + 1, a.pos.end());
  rest.kw = a.kw;
  for (auto& item : detail::iterate(seq)) out.push_back(apply_filter(filter, item, rest));
  return Value::make_list(std::move(out));
}

Value sort_items(const Value& seq, CallArgs& a) {
  List items = detail::iterate(seq);
  bool reverse = bool_arg(a, 0, "reverse", false);
  std::string attr = str_arg(a, 2, "attribute", "");
  auto key = [&](const Value& v) { return attr.empty() ? v : attr_path(v, attr); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    return reverse ? less(key(y), key(x)) : less(key(x), key(y));
  });
  return Value::make_list(std::move(items));
}

Value to_int(const Value& v, CallArgs& a) {
  const Value* dflt = arg(a, 0, "default");
  Value fallback = dflt ? *dflt : Value::integer(0);
  switch (v.kind) {
    case Kind::Int: return v;
    case Kind::Bool: return Value::integer(v.b);
    case Kind::Float: return Value::integer(int64_t(v.f));
    case Kind::String: {
      std::string s = strings::strip(v.s, "");
      try {
        size_t used = 0;
        int64_t i = std::stoll(s, &used, 10);
        if (used == s.size()) return Value::integer(i);
        double d = std::stod(s, &used);
        if (used == s.size()) return Value::integer(int64_t(d));
      } catch (const std::exception&) {
      }
      return fallback;
    }
    default: return fallback;
  }
}

Value to_float(const Value& v, CallArgs& a) {
  if (v.is_number() || v.kind == Kind::Bool) return Value::number(v.as_double());
  if (v.is_string()) {
    try {
      return Value::number(std::stod(v.s));
    } catch (const std::exception&) {
    }
  }
  const Value* dflt = arg(a, 0, "default");
  return dflt ? *dflt : Value::number(0);
}

Value indent(const Value& v, CallArgs& a) {
  const Value* w = arg(a, 0, "width");
  std::string pad = !w ? "    " : w->kind == Kind::Int ? std::string(size_t(std::max<int64_t>(w->i, 0)), ' ')
                                                        : to_str(*w);
  bool first = bool_arg(a, 1, "first", false), blank = bool_arg(a, 2, "blank", false);
  std::string s = to_str(v), out;
  size_t line_start = 0;
  bool is_first = true;
  for (;;) {
    size_t nl = s.find('\n', line_start);
    std::string line = s.substr(line_start, nl == std::string::npos ? std::string::npos : nl - line_start);
    bool empty = strings::strip(line, "").empty();
    if ((is_first ? first : true) && (blank || !empty)) out += pad;
    out += line;
    if (nl == std::string::npos) break;
    out += '\n';
    line_start = nl + 1;
    is_first = false;
  }
  return Value::string(out);
}

const std::map<std::string, Filter>& filters() {
  static const std::map<std::string, Filter> table = [] {
    std::map<std::string, Filter> t;
    t["tojson"] = tojson;
    t["trim"] = [](const Value& v, CallArgs& a) {
      return Value::string(strings::strip(to_str(v), str_arg(a, 0, "chars", "")));
    };
    t["length"] = [](const Value& v, CallArgs&) {
      if (v.is_string()) return Value::integer(int64_t(utf8_chars(v.s).size()));
      if (v.is_mapping()) return Value::integer(int64_t(v.dict->entries.size()));
      return Value::integer(int64_t(detail::iterate(v).size()));
    };
    t["count"] = t["length"];
    t["items"] = [](const Value& v, CallArgs&) {
      List out;
      if (v.is_mapping())
        for (auto& [k, x] : v.dict->entries) out.push_back(Value::make_list({Value::string(k), x}));
      else if (!v.is_undefined()) throw EvalError("items filter needs a mapping, got " + v.type_name());
      return Value::make_list(std::move(out));
    };
    t["default"] = [](const Value& v, CallArgs& a) {
      bool boolean = bool_arg(a, 1, "boolean", false);
      if (v.is_undefined() || (boolean && !v.truthy())) {
        const Value* d = arg(a, 0, "default_value");
        return d ? *d : Value::string("");
      }
      return v;
    };
    t["d"] = t["default"];
    t["upper"] = [](const Value& v, CallArgs&) { return Value::string(strings::upper(to_str(v))); };
    t["lower"] = [](const Value& v, CallArgs&) { return Value::string(strings::lower(to_str(v))); };
    t["capitalize"] = [](const Value& v, CallArgs&) { return Value::string(strings::capitalize(to_str(v))); };
    t["title"] = [](const Value& v, CallArgs&) { return Value::string(strings::jinja_title(to_str(v))); };
    t["first"] = [](const Value& v, CallArgs&) {
      List items = detail::iterate(v);
      return items.empty() ? Value::undefined() : items.front();
    };
    t["last"] = [](const Value& v, CallArgs&) {
      List items = detail::iterate(v);
      return items.empty() ? Value::undefined() : items.back();
    };
    t["join"] = [](const Value& v, CallArgs& a) {
      std::string sep = str_arg(a, 0, "d", ""), attr = str_arg(a, 1, "attribute", ""), out;
      bool first = true;
      for (auto& item : detail::iterate(v)) {
        out += (first ? "" : sep) + to_str(attr.empty() ? item : attr_path(item, attr));
        first = false;
      }
      return Value::string(out);
    };
    t["replace"] = [](const Value& v, CallArgs& a) {
      const Value* count = arg(a, 2, "count");
      return Value::string(strings::replace(to_str(v), str_arg(a, 0, "old", ""), str_arg(a, 1, "new", ""),
                                            count && count->kind == Kind::Int ? count->i : -1));
    };
    t["string"] = [](const Value& v, CallArgs&) { return Value::string(to_str(v)); };
    t["safe"] = [](const Value& v, CallArgs&) { return v; };
    t["escape"] = [](const Value& v, CallArgs&) { return Value::string(strings::html_escape(to_str(v))); };
    t["e"] = t["escape"];
    t["int"] = to_int;
    t["float"] = to_float;
    t["abs"] = [](const Value& v, CallArgs&) {
      return v.kind == Kind::Int ? Value::integer(std::abs(v.i)) : Value::number(std::fabs(v.as_double()));
    };
    t["round"] = [](const Value& v, CallArgs& a) {
      const Value* p = arg(a, 0, "precision");
      double scale = std::pow(10.0, p && p->kind == Kind::Int ? double(p->i) : 0.0);
      std::string method = str_arg(a, 1, "method", "common");
      double x = v.as_double() * scale;
      x = method == "floor" ? std::floor(x) : method == "ceil" ? std::ceil(x) : std::round(x);
      return Value::number(x / scale);
    };
    t["list"] = [](const Value& v, CallArgs&) { return Value::make_list(detail::iterate(v)); };
    t["reverse"] = [](const Value& v, CallArgs&) {
      if (v.is_string()) {
        auto chars = utf8_chars(v.s);
        std::string out;
        for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
        return Value::string(out);
      }
      List items = detail::iterate(v);
      std::reverse(items.begin(), items.end());
      return Value::make_list(std::move(items));
    };
    t["unique"] = [](const Value& v, CallArgs&) {
      List out;
      for (auto& x : detail::iterate(v))
        if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equals(x, y); }))
          out.push_back(x);
      return Value::make_list(std::move(out));
    };
    t["sort"] = sort_items;
    t["select"] = [](const Value& v, CallArgs& a) { return select_items(v, a, false, true); };
    t["reject"] = [](const Value& v, CallArgs& a) { return select_items(v, a, false, false); };
    t["selectattr"] = [](const Value& v, CallArgs& a) { return select_items(v, a, true, true); };
    t["rejectattr"] = [](const Value& v, CallArgs& a) { return select_items(v, a, true, false); };
    t["map"] = map_items;
    t["indent"] = indent;
    t["sum"] = [](const Value& v, CallArgs&) {
      Value total = Value::integer(0);
      for (auto& x : detail::iterate(v)) total = detail::arithmetic("+", total, x);
      return total;
    };
    t["dictsort"] = [](const Value& v, CallArgs&) {
      List out;
      if (v.is_mapping())
        for (auto& [k, x] : v.dict->entries) out.push_back(Value::make_list({Value::string(k), x}));
      std::stable_sort(out.begin(), out.end(),
                       [](const Value& x, const Value& y) { return (*x.list)[0].s < (*y.list)[0].s; });
      return Value::make_list(std::move(out));
    };
    return t;
  }();
  return table;
}

}  // namespace

bool has_filter(const std::string& name) { return filters().count(name) != 0; }

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  auto& table = filters();
  auto it = table.find(name);
  if (it == table.end()) throw EvalError("unknown filter '" + name + "'");
  return it->second(input, args);
}

}  // namespace tessera::jinja
