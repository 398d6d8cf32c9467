// Unit tests of the Jinja interpreter's filters, tests and global functions, and of its
// error messages (syntax errors with line/column, unknown filters, raise_exception).
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/jinja_eval.h"

namespace tessera::jinja {
namespace {

std::string render(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object()) {
  return Template(src).render(from_json(ctx));
}

std::string error_of(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object()) {
  try {
    render(src, ctx);
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no error)";
}

const nlohmann::ordered_json kMessages = {
    {"messages",
     {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U1"}}, {{"role", "user"}, {"content", "U2"}}}}};

TEST(JinjaFilters, Tojson) {
  nlohmann::ordered_json ctx = {{"v", {{"b", {1, 2.5, nullptr, true}}, {"a", "é\"\\\n\x01"}}}};
  EXPECT_EQ(render("{{ v | tojson }}", ctx), "{\"b\": [1, 2.5, null, true], \"a\": \"é\\\"\\\\\\n\\u0001\"}");
  EXPECT_EQ(render("{{ v | tojson(indent=2) }}", ctx),
            "{\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"a\": \"é\\\"\\\\\\n\\u0001\"\n}");
  EXPECT_EQ(render("{{ {} | tojson(indent=2) }} {{ [] | tojson }}"), "{} []");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(render("{{ [1, 2] | tojson(separators=(',', ':')) }}"), "[1,2]");
}

TEST(JinjaFilters, StringFilters) {
  EXPECT_EQ(render("[{{ '  a  ' | trim }}|{{ 'xax' | trim('x') }}|{{ 'aB' | upper }}|{{ 'aB' | lower }}]"), "[a|a|AB|ab]");
  EXPECT_EQ(render("{{ 'hELLO wORLD' | capitalize }} {{ 'hello big-world' | title }} {{ 'a-b' | replace('-', '=') }}"),
            "Hello world Hello Big-World a=b");
  EXPECT_EQ(render("{{ 5 | string }}{{ none | string }} {{ '<a>' | safe }} {{ '<a&>' | e }}"), "5None <a> &lt;a&amp;&gt;");
  EXPECT_EQ(render("{{ '12' | int + 1 }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }}"),
            "13 0 7 3 2.5");
  EXPECT_EQ(render("{{ 'a\nb' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"), "a\n  b|  a\n  b");
}

TEST(JinjaFilters, SequenceFilters) {
  EXPECT_EQ(render("{{ [1, 2, 3] | length }} {{ 'héllo' | length }} {{ {'a': 1} | count }} {{ missing | length }}"),
            "3 5 1 0");
  EXPECT_EQ(render("{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | first }} {{ [] | first is undefined }}"),
            "3 2 a True");
  EXPECT_EQ(render("{{ [1, 'a'] | join }} {{ ['a', 'b'] | join(', ') }} {{ 'ab' | list }}"), "1a a, b ['a', 'b']");
  EXPECT_EQ(render("{{ {'a': 1, 'b': 2} | items | list }} {{ missing | items | list }}"), "[['a', 1], ['b', 2]] []");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2] | reverse | list }}"),
            "[1, 2, 3] [3, 2, 1] [2, 1]");
  EXPECT_EQ(render("{{ [1, 2, 1] | unique | list }} {{ [1, 2, 3] | sum }} {{ -2 | abs }} {{ 2.567 | round(1) }}"),
            "[1, 2] 6 2 2.6");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | dictsort }}"), "[['a', 2], ['b', 1]]");
}

TEST(JinjaFilters, DefaultAndSelection) {
  EXPECT_EQ(render("{{ missing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ 0 | d(5, boolean=true) }}"),
            "d  d 5");
  EXPECT_EQ(render("{{ messages | map(attribute='role') | join(',') }}", kMessages), "system,user,user");
  EXPECT_EQ(render("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}", kMessages),
            "['U1', 'U2']");
  EXPECT_EQ(render("{{ messages | rejectattr('role', 'eq', 'user') | list | length }}", kMessages), "1");
  EXPECT_EQ(render("{{ [{'a': 1}, {'a': 0}, {}] | selectattr('a') | list | length }}"), "1");
  EXPECT_EQ(render("{{ ['a', 'B'] | map('upper') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2] | reject('odd') | list }}"),
            "['A', 'B'] [1, 3] [2]");
  EXPECT_EQ(render("{{ [{'a': {'b': 'x'}}] | map(attribute='a.b') | first }}"), "x");
}

TEST(JinjaTests, AllTests) {
  EXPECT_EQ(render("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ n is none }}{{ x is none }}", {{"x", 1}, {"n", nullptr}}),
            "TrueFalseTrueTrueFalse");
  EXPECT_EQ(render("{{ 's' is string }}{{ 1 is string }}{{ {} is mapping }}{{ [] is mapping }}{{ 1 is number }}{{ 1.5 is number }}"
                   "{{ 's' is number }}"),
            "TrueFalseTrueFalseTrueTrueFalse");
  EXPECT_EQ(render("{{ [] is iterable }}{{ 's' is iterable }}{{ 1 is iterable }}{{ [] is sequence }}{{ true is boolean }}"
                   "{{ 1 is boolean }}"),
            "TrueTrueFalseTrueTrueFalse");
  EXPECT_EQ(render("{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 1 is equalto 1 }}{{ 'a' is eq 'b' }}"
                   "{{ 2 is divisibleby 2 }}{{ 3 is even }}{{ 1 is integer }}{{ 1.0 is float }}"),
            "TrueFalseTrueTrueFalseTrueFalseTrueTrue");
  EXPECT_EQ(render("{{ 'a' is in ['a'] }}{{ 'ab' is lower }}{{ 'AB' is upper }}{{ x is callable }}{{ range is callable }}", {{"x", 1}}),
            "TrueTrueTrueFalseTrue");
  EXPECT_EQ(render("{{ 1 is not equalto 2 }}{{ 'x' is not string }}"), "TrueFalse");
}

TEST(JinjaGlobals, Functions) {
  EXPECT_EQ(render("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(3, 0, -1) | list }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  EXPECT_EQ(render("{{ dict(a=1)['a'] }}"), "1");
  EXPECT_EQ(render("{{ strftime_now('%Y') | length }}"), "4");
  try {
    render("{% if true %}{{ raise_exception('Roles must alternate!') }}{% endif %}");
    FAIL() << "no exception";
  } catch (const UserError& e) {
    EXPECT_STREQ(e.what(), "Roles must alternate!");
  }
}

TEST(JinjaErrors, SyntaxErrorsHavePositions) {
  EXPECT_EQ(error_of("ab\n  {% if x %}never closed"),
            "chat template: line 2, column 25: unexpected end of template, expected '{% endif %}'");
  EXPECT_EQ(error_of("x {{ a + }}"), "chat template: line 1, column 10: unexpected '}}' in expression");
  EXPECT_EQ(error_of("line1\n{{ 'unterminated"), "chat template: line 2, column 4: unterminated string literal");
  EXPECT_EQ(error_of("{{ x "), "chat template: line 1, column 1: unterminated tag (missing '}}')");
  EXPECT_EQ(error_of("{% if x %}\n{{ y }"), "chat template: line 2, column 1: unterminated tag (missing '}}')");
  EXPECT_EQ(error_of("{# comment"), "chat template: line 1, column 1: unterminated comment (missing '#}')");
  EXPECT_EQ(error_of("{% frobnicate %}"), "chat template: line 1, column 4: unknown statement 'frobnicate'");
  EXPECT_EQ(error_of("{% for x in y %}{% endif %}"),
            "chat template: line 1, column 20: unknown statement 'endif'");
  EXPECT_EQ(error_of("{{ x | nosuchfilter }}"), "chat template: line 1, column 8: unknown filter 'nosuchfilter'");
  EXPECT_EQ(error_of("{{ x is nosuchtest }}"), "chat template: line 1, column 9: unknown test 'nosuchtest'");
}

TEST(JinjaErrors, RuntimeErrors) {
  EXPECT_EQ(error_of("\n{{ 'a' + none }}"), "chat template: line 2, column 8: unsupported operand types for +: 'string' and 'none'");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "chat template: line 1, column 6: division by zero");
  EXPECT_EQ(error_of("{{ x() }}", {{"x", 1}}), "chat template: line 1, column 5: 'x' is not callable (int)");
  EXPECT_EQ(error_of("{{ 'a'.nomethod() }}"), "chat template: line 1, column 16: 'nomethod' is not callable (undefined)");
  EXPECT_EQ(error_of("{% for a, b in [[1]] %}{% endfor %}"),
            "chat template: line 1, column 4: cannot unpack 1 values into 2 loop variables");
}

}  // namespace
}  // namespace tessera::jinja
