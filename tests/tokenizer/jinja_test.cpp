// Unit tests for the template interpreter: lexer whitespace rules, parser,
// expressions, filters, tests, statements, sandbox and every limit. Expected
// strings are what Python jinja2 3.1 (HF configuration) renders.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/chat_template.h"

namespace velo {
namespace {

using nlohmann::json;

std::string R(const std::string& src, const json& ctx = json::object(), const TemplateLimits& lim = {}) {
  auto r = render_template(src, ctx, lim);
  if (!r.ok()) return "ERROR: " + r.message();
  return *r;
}

bool Fails(const std::string& src, const std::string& needle, const json& ctx = json::object(),
           const TemplateLimits& lim = {}) {
  auto r = render_template(src, ctx, lim);
  if (r.ok()) {
    ADD_FAILURE() << "rendered: " << *r;
    return false;
  }
  if (r.message().find(needle) == std::string::npos) {
    ADD_FAILURE() << "error '" << r.message() << "' lacks '" << needle << "'";
    return false;
  }
  return true;
}

TEST(JinjaLexer, TrimAndLstripBlocks) {
  EXPECT_EQ(R("  {% if true %}\n  x\n  {% endif %}\n  {{ 'y' }}\n"), "  x\n  y");
  EXPECT_EQ(R("a\n{% if true %}\nb\n{% endif %}\nc\n"), "a\nb\nc");
  EXPECT_EQ(R("    {% for i in [1] %}\n    {{ i }}\n    {% endfor %}\n    end"), "    1\n    end");
  EXPECT_EQ(R("{# c #}\nx"), "x");  // trim_blocks applies to comments too
}

TEST(JinjaLexer, DashAndPlusControl) {
  EXPECT_EQ(R("{{- ' a ' -}}  {{- ' b ' }}  {{ 'c' -}}  \n  d"), " a  b   cd");
  EXPECT_EQ(R("x \t{%- if true -%} \n y {%- endif %}"), "xy");
  EXPECT_EQ(R("{%+ if true %}x{% endif +%}\ny"), "x\ny");
  EXPECT_EQ(R("a {#- c -#} b"), "ab");
}

TEST(JinjaLexer, NewlinesAndRaw) {
  EXPECT_EQ(R("a\r\nb\rc\n"), "a\nb\nc");  // normalised, one trailing newline dropped
  EXPECT_EQ(R("a\n\n"), "a\n");
  EXPECT_EQ(R("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
}

TEST(JinjaLexer, StringEscapes) {
  EXPECT_EQ(R(R"({{ 'a\nb\t\'\"\\\x41\u00e9\q' }})"), "a\nb\t'\"\\Aé\\q");
  EXPECT_EQ(R("{{ 'a' \"b\" }}"), "ab");  // adjacent literals concatenate
}

TEST(JinjaParser, SyntaxErrorsNameTheLine) {
  EXPECT_TRUE(Fails("a\n\n{{ 1 + }}", "line 3"));
  EXPECT_TRUE(Fails("{% if x %}", "unexpected end of template"));
  EXPECT_TRUE(Fails("{% endif %}", "unknown or unsupported tag 'endif'"));
  EXPECT_TRUE(Fails("{{ 'abc }}", "unterminated string"));
  EXPECT_TRUE(Fails("{% for %}", "expected a name"));
  EXPECT_TRUE(Fails("{{ x | }}", "expected a name"));
  EXPECT_TRUE(Fails("{% frobnicate %}", "unknown or unsupported tag 'frobnicate'"));
  EXPECT_TRUE(Fails("{% for x in y recursive %}{% endfor %}", "recursive loops are not supported"));
}

TEST(JinjaSandbox, NoLoadingOtherTemplates) {
  for (const char* s : {"{% include 'x' %}", "{% extends 'x' %}", "{% import 'x' as y %}",
                        "{% from 'x' import y %}", "{% block b %}{% endblock %}"})
    EXPECT_TRUE(Fails(s, "cannot load other templates")) << s;
}

TEST(JinjaSandbox, ListsAndDictsAreImmutable) {
  EXPECT_TRUE(Fails("{% set l = [1] %}{{ l.append(2) }}", "access to attribute 'append' of 'list' object is unsafe"));
  EXPECT_TRUE(Fails("{% set d = {} %}{{ d.update({'a': 1}) }}", "unsafe"));
  EXPECT_EQ(R("{{ x.__class__ }}", {{"x", "s"}}), "");  // private attributes are undefined
}

TEST(JinjaExpr, ArithmeticLikePython) {
  EXPECT_EQ(R("{{ 1/2 }} {{ 10/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2**10 }} {{ 10 ** -1 }}"),
            "0.5 5.0 3 -4 2 -2 1024 0.1");
  EXPECT_EQ(R("{{ true + 1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ -2 ** 2 }}"), "2 3.0 0.5 4");
  EXPECT_EQ(R("{{ 'a' * 3 }} {{ [0] * 2 }} {{ [1] + [2] }} {{ 'x' ~ 1 ~ none ~ true }}"), "aaa [0, 0] [1, 2] x1NoneTrue");
  EXPECT_TRUE(Fails("{{ 1 / 0 }}", "division by zero"));
  EXPECT_TRUE(Fails("{{ 'x' + 1 }}", "can only concatenate str"));
  EXPECT_TRUE(Fails("{{ 9223372036854775807 + 1 }}", "integer overflow"));
}

TEST(JinjaExpr, FloatRepr) {
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.0001 }} {{ 1.5e300 * 10 }} {{ -0.0 }} {{ 123456789.123 }} {{ 2.5e-7 }}"),
            "0.30000000000000004 1e+16 1e-05 0.0001 1.5e+301 -0.0 123456789.123 2.5e-07");
}

TEST(JinjaExpr, ComparisonsAndLogic) {
  EXPECT_EQ(R("{{ 5 > 3 > 1 }} {{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }} {{ 'a' in 'abc' }} {{ 'z' not in 'abc' }}"),
            "True True True True True");
  EXPECT_EQ(R("{{ true and 'x' }} {{ false or 'y' }} {{ none or [] }} {{ 0 and 1 }} {{ not none }}"), "x y [] 0 True");
  EXPECT_TRUE(Fails("{{ 1 < 'a' }}", "not supported between"));
  EXPECT_EQ(R("{{ 'x' if true else 'y' }}{{ 'x' if false else 'y' }}[{{ 'a' if false }}]"), "xy[]");
}

TEST(JinjaExpr, ReprOfContainers) {
  EXPECT_EQ(R("{{ {'a': 1, 'b': [1, 'x', none, true, 1.5]} }}"), "{'a': 1, 'b': [1, 'x', None, True, 1.5]}");
  EXPECT_EQ(R("{{ (1, 2) }}{{ (1,) }}{{ [\"it's\", 'a\"b', '\\n'] }}"), "(1, 2)(1,)[\"it's\", 'a\"b', '\\n']");
}

TEST(JinjaExpr, SubscriptsAndSlices) {
  EXPECT_EQ(R("{{ [1,2,3][::-1] }} {{ 'héllo'[1:3] }} {{ [1,2,3][-1] }} {{ [1,2,3,4,5][1:-1:2] }} {{ x.0 }}",
              {{"x", {7, 8}}}),
            "[3, 2, 1] él 3 [2, 4] 7");
  EXPECT_EQ(R("[{{ [1][5] }}][{{ none.a }}][{{ d.missing }}]", {{"d", json::object()}}), "[][][]");
  EXPECT_TRUE(Fails("{{ [1][::0] }}", "slice step cannot be zero"));
}

TEST(JinjaUndefined, DefaultUndefinedSemantics) {
  EXPECT_EQ(R("[{{ x }}]{{ x is defined }}{{ x|default('d') }}{{ x|length }}{{ x is none }}"), "[]Falsed0False");
  EXPECT_EQ(R("{% for i in x %}a{% else %}empty{% endfor %}{{ 'k' in x }}"), "emptyFalse");
  EXPECT_TRUE(Fails("{{ x.y }}", "'x' is undefined"));
  EXPECT_TRUE(Fails("{{ x + 1 }}", "'x' is undefined"));
  EXPECT_TRUE(Fails("{{ x() }}", "'x' is undefined"));
  EXPECT_TRUE(Fails("{{ d.a.b }}", "has no attribute 'a'", {{"d", json::object()}}));
}

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(R("{{ '  x  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'Hello'|upper }}|{{ 'hello WORLD'|capitalize }}"),
            "x|hi|HELLO|Hello world");
  EXPECT_EQ(R("{{ 'hello-world foo'|title }}|{{ 'a-b'|replace('-', '+') }}|{{ 'Hello World'|wordcount }}"),
            "Hello-World Foo|a+b|2");
  EXPECT_EQ(R("{{ 'line1\nline2'|indent(2) }}|{{ 'x'|center(5) }}|{{ '<&>'|e }}|{{ 'ß'|upper }}"),
            "line1\n  line2|  x  |&lt;&amp;&gt;|SS");
  EXPECT_EQ(R("{{ '%s-%d'|format('a', 3) }} {{ '%05.2f|%-4s|%x' % (3.14159, 'ab', 255) }}"), "a-3 03.14|ab  |ff");
}

TEST(JinjaFilters, Numbers) {
  EXPECT_EQ(R("{{ 2.5|round }} {{ 2.675|round(2) }} {{ 5|round }} {{ 3.7|round(0, 'floor') }} {{ -3|abs }}"),
            "2.0 2.67 5 3.0 3");
  EXPECT_EQ(R("{{ '12'|int + 1 }} {{ 'x'|int }} {{ '3.9'|int }} {{ 'ff'|int(0, 16) }} {{ '3.5'|float }} {{ 3|float }}"),
            "13 0 3 255 3.5 3.0");
}

TEST(JinjaFilters, Sequences) {
  json ctx = {{"msgs", {{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}}}};
  EXPECT_EQ(R("{{ msgs|selectattr('role', 'equalto', 'user')|list|length }} {{ msgs|map(attribute='role')|join('|') }}",
              ctx),
            "1 system|user");
  EXPECT_EQ(R("{{ msgs|rejectattr('role', '==', 'user')|map(attribute='content')|list }}", ctx), "['S']");
  EXPECT_EQ(R("{{ [3,1,2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [1,3,2]|sort(reverse=true) }} {{ ['a','B','a','b']|unique|list }}"),
            "[1, 2, 3] ['A', 'b', 'c'] [3, 2, 1] ['a', 'B']");
  EXPECT_EQ(R("{{ [1,2,3]|sum }} {{ [3,1,2]|max }} {{ [3,1,2]|min }} {{ 'abc'|first }} {{ 'abc'|last }} {{ [1,2]|reverse|list }}"),
            "6 3 1 a c [2, 1]");
  EXPECT_EQ(R("{{ {'b': 2, 'a': 1}|dictsort }} {{ {'a': 1}|items|list }} {{ [1, 2, 3]|select('odd')|list }}"),
            "[('a', 1), ('b', 2)] [('a', 1)] [1, 3]");
  EXPECT_EQ(R("{{ [1,2,3]|map('string')|join(',') }} {{ [{'a': 1}, {}]|map(attribute='a', default=0)|list }}"),
            "1,2,3 [1, 0]");
}

TEST(JinjaFilters, ToJsonLikeHF) {
  EXPECT_EQ(R("{{ {'a': 1, 'é': [1.0, none, true]}|tojson }}"), "{\"a\": 1, \"é\": [1.0, null, true]}");
  EXPECT_EQ(R("{{ [1, {'b': []}]|tojson(indent=2) }}"), "[\n  1,\n  {\n    \"b\": []\n  }\n]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true, separators=(',', ':')) }}"), "{\"a\":2,\"b\":1}");
  EXPECT_EQ(R("{{ 'é😀\n\x01'|tojson(ensure_ascii=true) }}"), "\"\\u00e9\\ud83d\\ude00\\n\\u0001\"");
  EXPECT_TRUE(Fails("{{ x|tojson }}", "not JSON serializable"));
}

TEST(JinjaFilters, KeyOrderOfContextIsKept) {
  nlohmann::ordered_json ctx = {{"t", {{"zeta", 1}, {"alpha", 2}}}};
  auto r = render_template("{{ t|tojson }} {{ t }}", ctx);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(*r, "{\"zeta\": 1, \"alpha\": 2} {'zeta': 1, 'alpha': 2}");
}

TEST(JinjaTests, Builtins) {
  EXPECT_EQ(R("{{ 'a' is string }}{{ 1 is number }}{{ true is boolean }}{{ {} is mapping }}{{ 'a' is iterable }}"
              "{{ 1 is iterable }}{{ 1.5 is float }}{{ true is integer }}"),
            "TrueTrueTrueTrueTrueFalseTrueFalse");
  EXPECT_EQ(R("{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 2 is in [1, 2] }}{{ none is sameas none }}"
              "{{ 1 is equalto 1 }}{{ 'ab' is lower }}{{ x is not defined }}"),
            "TrueTrueTrueTrueTrueTrueTrueTrue");
}

TEST(JinjaMethods, StrAndDict) {
  EXPECT_EQ(R("{{ 'a b'.split() }} {{ 'a-b-c'.split('-', 1) }} {{ 'aXbXc'.rsplit('X', 1) }} {{ ' x '.strip() }}"),
            "['a', 'b'] ['a', 'b-c'] ['aXb', 'c'] x");
  EXPECT_EQ(R("{{ 'abc'.startswith('a') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'hello world'.title() }} {{ '\\n\\nx'.lstrip('\\n') }}"),
            "True True Hello World x");
  json ctx = {{"d", {{"a", 1}}}};
  EXPECT_EQ(R("{{ d.get('a') }} {{ d.get('z', 5) }} {{ d.get('z') }} {{ d.keys()|list }} {{ d.values()|list }}", ctx),
            "1 5 None ['a'] [1]");
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}", ctx), "a=1");
}

TEST(JinjaStatements, LoopVariables) {
  EXPECT_EQ(R("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}"
              "{{ loop.length }}|{% endfor %}"),
            "103TrueFalse3|212FalseFalse3|321FalseTrue3|");
  EXPECT_EQ(R("{% for a in [1,2] %}[{{ loop.previtem }}{{ loop.nextitem }}]{% endfor %}"), "[2][1]");
  EXPECT_EQ(R("{% for m in [1, 2, 3, 4] if m is even %}{{ loop.index }}/{{ loop.length }}:{{ m }} {% endfor %}"),
            "1/2:2 2/2:4 ");
  EXPECT_EQ(R("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(R("{% for x in [] %}a{% else %}b{% endfor %}"), "b");
  EXPECT_EQ(R("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"), "37");
  EXPECT_EQ(R("{% for x in [1, 2, 3] %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "aba");
}

TEST(JinjaStatements, ScopingLikeJinja2) {
  EXPECT_EQ(R("{% set c = 0 %}{% for i in [1,2,3] %}{% set c = c + 1 %}{{ c }}{% endfor %}{{ c }}"), "1110");
  EXPECT_EQ(R("{% set ns = namespace(c=0) %}{% for i in [1,2,3] %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}"), "6");
  EXPECT_EQ(R("{% if true %}{% set x = 1 %}{% endif %}{{ x }}"), "1");
  EXPECT_EQ(R("{% with x = 5 %}{{ x }}{% endwith %}[{{ x }}]"), "5[]");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{%- set x -%} hi {%- endset %}[{{ x }}]"), "[hi]");
  EXPECT_TRUE(Fails("{% set x = 1 %}{% set x.a = 2 %}", "non-namespace"));
}

TEST(JinjaStatements, MacrosCallAndFilterBlocks) {
  EXPECT_EQ(R("{% macro m(a, b='x') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}"), "[1x][12]");
  EXPECT_TRUE(Fails("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "takes not more than 1 argument"));
  EXPECT_TRUE(Fails("{% macro m(a) %}{% endmacro %}{{ m(1, z=2) }}", "no keyword argument 'z'"));
  EXPECT_EQ(R("{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, z=3) }}"), "1(2,){'z': 3}");
  EXPECT_EQ(R("{% macro outer() %}<{{ caller() }}>{% endmacro %}{% call outer() %}inner{% endcall %}"), "<inner>");
  EXPECT_EQ(R("{% filter upper %}abc{% endfilter %}"), "ABC");
  EXPECT_EQ(R("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(JinjaGlobals, Builtins) {
  EXPECT_EQ(R("{{ range(3)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1) }} {{ namespace(a=1).a }}"),
            "[0, 1, 2] [5, 3, 1] {'a': 1} 1");
  EXPECT_TRUE(Fails("{{ raise_exception('boom') }}", "boom"));
  EXPECT_TRUE(Fails("{{ range(200000)|list }}", "MAX_RANGE"));
  EXPECT_EQ(R("{{ range(-9223372036854775807 - 1, 9223372036854775807, 4611686018427387904)|list }}"),
            "[-9223372036854775808, -4611686018427387904, 0, 4611686018427387904]");
  EXPECT_TRUE(Fails("{{ range(0, 1, 0) }}", "must not be zero"));
  std::string year = R("{{ strftime_now('%Y') }}");
  EXPECT_EQ(year.size(), 4u);
}

TEST(JinjaLimits, Steps) {
  TemplateLimits lim;
  lim.max_steps = 1000;
  EXPECT_TRUE(Fails("{% for i in range(100000) %}{{ i }}{% endfor %}", "step limit", json::object(), lim));
  EXPECT_EQ(R("{% for i in range(10) %}{{ i }}{% endfor %}", json::object(), lim), "0123456789");
}

TEST(JinjaLimits, MacroRecursionDepth) {
  TemplateLimits lim;
  lim.max_depth = 16;
  EXPECT_TRUE(Fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion too deep", json::object(), lim));
  EXPECT_EQ(R("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", json::object(), lim),
            "54321");
}

TEST(JinjaLimits, BlockNesting) {
  TemplateLimits lim;
  lim.max_depth = 8;
  std::string deep;
  for (int i = 0; i < 10; ++i) deep += "{% if true %}";
  deep += "x";
  for (int i = 0; i < 10; ++i) deep += "{% endif %}";
  EXPECT_TRUE(Fails(deep, "nested too deeply", json::object(), lim));
}

TEST(JinjaLimits, OutputSize) {
  TemplateLimits lim;
  lim.max_output_bytes = 100;
  EXPECT_TRUE(Fails("{% for i in range(50) %}xxxx{% endfor %}", "output exceeds", json::object(), lim));
  EXPECT_TRUE(Fails("{{ 'x' * 1000000000 }}", "larger than the output limit", json::object(), lim));
  EXPECT_TRUE(Fails("{{ 'xx' * 9223372036854775807 }}", "limit", json::object(), lim));
  EXPECT_TRUE(Fails("{{ [1, 2] * 9223372036854775807 }}", "step limit", json::object(), lim));
  EXPECT_TRUE(Fails("{% set s = 'xxxxxxxxxx' %}{% set s = s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s %}", "output limit",
                    json::object(), lim));
}

TEST(JinjaLimits, SourceAndExpressionSize) {
  TemplateLimits lim;
  lim.max_source_bytes = 64;
  EXPECT_TRUE(Fails(std::string(100, 'x'), "too large", json::object(), lim));
  std::string parens(5000, '(');
  EXPECT_TRUE(Fails("{{ " + parens + "1" + std::string(5000, ')') + " }}", "nested too deeply"));
  std::string chain = "{{ 1";
  for (int i = 0; i < 5000; ++i) chain += " + 1";
  EXPECT_TRUE(Fails(chain + " }}", "too complex"));
  std::string ok_chain = "{{ 1";
  for (int i = 0; i < 200; ++i) ok_chain += " + 1";
  EXPECT_EQ(R(ok_chain + " }}"), "201");  // long concatenations in real templates still work
}

TEST(JinjaLimits, ContextDepth) {
  json deep = json::array();
  for (int i = 0; i < 300; ++i) deep = json::array({deep});
  EXPECT_TRUE(Fails("x", "nested too deeply", {{"d", deep}}));
}

}  // namespace
}  // namespace velo
