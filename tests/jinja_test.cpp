// Unit tests of the Jinja interpreter behind chat templates: statements, whitespace control,
// expressions and operators. Expected values are Python Jinja's (trim_blocks=True,
// lstrip_blocks=True, as transformers configures it). Filters, tests and errors are in
// jinja_builtins_test.cpp.
#include <gtest/gtest.h>

#include "runtime/error.h"
#include "runtime/jinja_eval.h"

namespace tessera::jinja {
namespace {

std::string render(const std::string& src, const nlohmann::ordered_json& ctx = nlohmann::ordered_json::object()) {
  return Template(src).render(from_json(ctx));
}

TEST(Jinja, TextCommentsAndOutput) {
  EXPECT_EQ(render("plain text"), "plain text");
  EXPECT_EQ(render("a{# comment #}b"), "ab");
  EXPECT_EQ(render("{{ x }}-{{ y }}", {{"x", "X"}, {"y", 3}}), "X-3");
  EXPECT_EQ(render("{{ missing }}|{{ missing.attr }}|{{ missing['k'] }}"), "||");
  EXPECT_EQ(render("{{ none }} {{ true }} {{ False }} {{ 1.0 }} {{ 2.5 }} {{ [1, 'a'] }} {{ {'k': 'v'} }}"),
            "None True False 1.0 2.5 [1, 'a'] {'k': 'v'}");
  EXPECT_EQ(render("trailing newline dropped\n"), "trailing newline dropped");
  EXPECT_EQ(render("{% raw %}{{ not evaluated }}{% endraw %}"), "{{ not evaluated }}");
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(render("a\n  {#- c -#}\n  b"), "ab");
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it too.
  EXPECT_EQ(render("{% if true %}\n  yes\n  {% endif %}\nend"), "  yes\nend");
  // Not after a variable tag, and not when the tag is preceded by text on its line.
  EXPECT_EQ(render("{{ 'v' }}\nx {% if true %}y{% endif %}"), "v\nx y");
  // {%+ and +%} turn lstrip_blocks and trim_blocks off for one tag.
  EXPECT_EQ(render("  {%+ if true +%}\nz{% endif %}"), "  \nz");
  EXPECT_EQ(render("  {# c #}\nq"), "q");
}

TEST(Jinja, IfElifElse) {
  const char* src = "{% if n == 1 %}one{% elif n == 2 %}two{% elif n > 2 %}many{% else %}none{% endif %}";
  EXPECT_EQ(render(src, {{"n", 1}}), "one");
  EXPECT_EQ(render(src, {{"n", 2}}), "two");
  EXPECT_EQ(render(src, {{"n", 5}}), "many");
  EXPECT_EQ(render(src, {{"n", 0}}), "none");
}

TEST(Jinja, ForLoops) {
  nlohmann::ordered_json ctx = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ x }}{{ loop.revindex }}"
                   "{{ loop.length }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %},{% endfor %}",
                   ctx),
            "10a33F,21b23,32c13L,");
  EXPECT_EQ(render("{% for x in xs if x != 'b' %}{{ loop.index }}{{ x }}/{{ loop.length }} {% endfor %}", ctx),
            "1a/2 2c/2 ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"z", 1}, {"a", 2}}}}),
            "z=1;a=2;");
  EXPECT_EQ(render("{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}"), "ba");
  EXPECT_EQ(render("{% for c in 'héj' %}[{{ c }}]{% endfor %}"), "[h][é][j]");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.cycle('odd', 'even') }}{% endfor %}", ctx), "oddevenodd");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }} {% endfor %}", ctx),
            ">a>b a>b>c b>c> ");
  EXPECT_EQ(render("{% for i in range(10) %}{% if i is odd %}{% continue %}{% endif %}{% if i > 6 %}{% break %}"
                   "{% endif %}{{ i }}{% endfor %}"),
            "0246");
  // Inner loops have their own `loop`; variables set in a loop do not leak out.
  EXPECT_EQ(render("{% set v = 'out' %}{% for a in [1, 2] %}{% for b in [1] %}{{ loop.length }}{% endfor %}"
                   "{{ loop.length }}{% set v = 'in' %}{% endfor %}{{ v }}"),
            "1212out");
  EXPECT_EQ(render("{% for x in missing %}x{% else %}none{% endfor %}"), "none");
}

TEST(Jinja, SetAndNamespace) {
  EXPECT_EQ(render("{% set x = 1 + 2 %}{{ x }}"), "3");
  EXPECT_EQ(render("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% set t = 1, 2 %}{{ t | length }}"), "2");
  EXPECT_EQ(render("{% set s %}block {{ 'body' }}{% endset %}[{{ s }}]"), "[block body]");
  EXPECT_EQ(render("{% set ns = namespace(n=0, seen=false) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}"
                   "{% set ns.seen = true %}{% endfor %}{{ ns.n }} {{ ns.seen }} {{ ns.missing is defined }}"),
            "6 True False");
  EXPECT_EQ(render("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}"), "12");
  EXPECT_THROW(render("{% set x = 1 %}{% set x.y = 2 %}"), UserError);
}

TEST(Jinja, MacrosAndCall) {
  EXPECT_EQ(render("{% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|"
                   "{{ m(1, c=3) }}"),
            "1BNone|12None|1B3");
  EXPECT_EQ(render("{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}in{% endcall %}"), "[in]");
  EXPECT_EQ(render("{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}"
                   "{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}"),
            "<1><2>");
  EXPECT_EQ(render("{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}"), "G");
  EXPECT_EQ(render("{% filter upper %}a{{ 'b' }}{% endfilter %}"), "AB");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(Jinja, Operators) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }}"),
            "7 9 3 -4 1 2");
  EXPECT_EQ(render("{{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 8 }} {{ 1.5 * 2 }} {{ -3 }} {{ 10 - 2 - 3 }}"),
            "3.5 2.0 256 3.0 -3 5");
  EXPECT_EQ(render("{{ 'a' ~ 1 ~ none }} {{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ [1] + [2] }}"), "a1None ab ababab [1, 2]");
  EXPECT_EQ(render("{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ [1, 2] == [1, 2] }}"),
            "True False True True False True");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' in missing }}"),
            "True True True False");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 1 and 'y' }} {{ [] and 'z' }} {{ not 0 }} {{ not 'a' }}"), "x y [] True False");
  EXPECT_EQ(render("{{ 'yes' if c else 'no' }} {{ 'a' if 0 }}.", {{"c", true}}), "yes .");
  EXPECT_EQ(render("{{ x is none }} {{ x is not none }} {{ not x is defined }}", {{"x", nullptr}}),
            "True False False");
}

TEST(Jinja, AccessAndSlicing) {
  nlohmann::ordered_json ctx = {{"m", {{"role", "user"}, {"tags", {"a", "b", "c", "d"}}}}};
  EXPECT_EQ(render("{{ m.role }} {{ m['role'] }} {{ m.tags[0] }} {{ m.tags[-1] }} {{ m.tags.1 }}", ctx),
            "user user a d b");
  EXPECT_EQ(render("{{ m.tags[1:3] }} {{ m.tags[:2] }} {{ m.tags[2:] }} {{ m.tags[::-1] }} {{ m.tags[::2] }}", ctx),
            "['b', 'c'] ['a', 'b'] ['c', 'd'] ['d', 'c', 'b', 'a'] ['a', 'c']");
  EXPECT_EQ(render("{{ 'hello'[1:-1] }} {{ 'hello'[::-1] }} {{ 'héllo'[1] }} {{ 'abc'[-5:10] }} {{ 'abcdef'[4:1:-1] }}"),
            "ell olleh é abc edc");
  EXPECT_EQ(render("{{ m.tags[10] is undefined }} {{ m.nope is defined }}", ctx), "True False");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson }} {{ [1, [2, 3]] | tojson }} {{ ('x', 'y') | tojson }}"),
            "{\"b\": 1, \"a\": 2} [1, [2, 3]] [\"x\", \"y\"]");
  EXPECT_EQ(render("{{ 'a' 'b' }} {{ \"q\\\"\\n\\u00e9\\t\" | tojson }}"), "ab \"q\\\"\\n\u00e9\\t\"");
}

TEST(Jinja, StringAndDictMethods) {
  EXPECT_EQ(render("[{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  a'.lstrip() }}|{{ 'a  '.rstrip() }}"
                   "|{{ '--a'.lstrip('-') }}|{{ 'a--'.rstrip('-') }}]"),
            "[a b|a|a|a|a|a]");
  EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']");
  EXPECT_EQ(render("{{ 'aBc'.upper() }} {{ 'aBc'.lower() }} {{ \"they're bill's\".title() }} {{ 'hELLO'.capitalize() }}"),
            "ABC abc They'Re Bill'S Hello");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }}"),
            "True True True");
  EXPECT_EQ(render("{{ 'a-b-c'.replace('-', '+') }} {{ 'a-b-c'.replace('-', '', 1) }} {{ ', '.join(['x', 'y']) }}"),
            "a+b+c ab-c x, y");
  nlohmann::ordered_json ctx = {{"d", {{"k", "v"}, {"n", 1}}}};
  EXPECT_EQ(render("{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }}", ctx),
            "[['k', 'v'], ['n', 1]] ['k', 'n'] ['v', 1]");
  EXPECT_EQ(render("{{ d.get('k') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }}", ctx), "v None dflt");
}

}  // namespace
}  // namespace tessera::jinja
