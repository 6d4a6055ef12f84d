#include "tokenizer/jinja/parser.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "tokenizer/jinja/lexer.h"

namespace velo::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> toks, const ParseLimits& lim) : t_(std::move(toks)), lim_(lim) {}

  Result<Body> parse_template() {
    VELO_ASSIGN_OR_RETURN(Body body, parse_body({}));
    if (cur().type != Tok::Eof) return err("unexpected tag '" + cur().text + "'");
    return body;
  }

 private:
  std::vector<Token> t_;
  size_t p_ = 0;
  ParseLimits lim_;
  uint32_t block_depth_ = 0;
  uint32_t expr_depth_ = 0;

  struct DepthGuard {
    uint32_t& d;
    explicit DepthGuard(uint32_t& x) : d(++x) {}
    ~DepthGuard() { --d; }
  };

  const Token& cur() const { return t_[p_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  void next() { if (p_ + 1 < t_.size()) ++p_; }
  Error err(const std::string& msg) const {
    return make_error("template syntax error at line " + std::to_string(cur().line) + ": " + msg);
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool skip_op(const char* op) { if (is_op(op)) { next(); return true; } return false; }
  bool skip_name(const char* n) { if (is_name(n)) { next(); return true; } return false; }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Eof: return "end of template";
      case Tok::VarEnd: return "'}}'";
      case Tok::BlockEnd: return "'%}'";
      case Tok::Data: return "template text";
      case Tok::String: return "string";
      default: return "'" + t.text + "'";
    }
  }
  Status expect_op(const char* op) {
    if (!skip_op(op)) return err(std::string("expected '") + op + "', got " + describe(cur()));
    return {};
  }
  Status expect_block_end() {
    if (cur().type != Tok::BlockEnd) return err("expected '%}', got " + describe(cur()));
    next();
    return {};
  }
  Result<std::string> expect_name() {
    if (cur().type != Tok::Name) return err("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    next();
    return n;
  }

  // Records the subtree height; left-deep chains (a + b + c ...) are built in
  // loops, so this bounds evaluation and destruction recursion.
  Result<ExprP> finish(ExprP e) {
    uint32_t d = 0;
    for (const auto& k : e->kids)
      if (k) d = std::max(d, k->depth);
    e->depth = d + 1;
    if (e->depth > lim_.max_expr_depth) return err("expression too complex");
    return e;
  }

  ExprP node(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // ---- statements ---------------------------------------------------------

  // Parses until a {% name %} with name in `ends` (left current) or the end.
  Result<Body> parse_body(std::initializer_list<const char*> ends) {
    DepthGuard g(block_depth_);
    if (block_depth_ > lim_.max_block_depth) return err("blocks nested too deeply");
    Body body;
    while (true) {
      const Token& tk = cur();
      if (tk.type == Tok::Eof) {
        if (ends.size() != 0) return err(std::string("unexpected end of template, expected '") + *ends.begin() + "'");
        return body;
      }
      if (tk.type == Tok::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = tk.line;
        s->text = tk.text;
        body.push_back(std::move(s));
        next();
        continue;
      }
      if (tk.type == Tok::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->line = tk.line;
        next();
        VELO_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, false, nullptr));
        if (cur().type != Tok::VarEnd) return err("expected '}}', got " + describe(cur()));
        next();
        body.push_back(std::move(s));
        continue;
      }
      if (tk.type == Tok::BlockBegin) {
        const Token& kw = peek();
        if (kw.type == Tok::Name)
          for (const char* e : ends)
            if (kw.text == e) {
              next();  // leave the end keyword current
              return body;
            }
        next();
        VELO_ASSIGN_OR_RETURN(StmtP s, parse_statement());
        if (s) body.push_back(std::move(s));
        continue;
      }
      return err("unexpected " + describe(tk));
    }
  }

  Result<StmtP> parse_statement() {
    if (cur().type != Tok::Name) return err("expected a tag name, got " + describe(cur()));
    std::string kw = cur().text;
    int line = cur().line;
    auto s = std::make_unique<Stmt>();
    s->line = line;
    next();
    if (kw == "if") {
      s->kind = StmtKind::If;
      while (true) {
        VELO_ASSIGN_OR_RETURN(ExprP c, parse_tuple(false, false, nullptr));
        s->conds.push_back(std::move(c));
        VELO_TRY(expect_block_end());
        VELO_ASSIGN_OR_RETURN(Body b, parse_body({"elif", "else", "endif"}));
        s->branches.push_back(std::move(b));
        if (skip_name("elif")) continue;
        if (skip_name("else")) {
          VELO_TRY(expect_block_end());
          VELO_ASSIGN_OR_RETURN(Body eb, parse_body({"endif"}));
          s->branches.push_back(std::move(eb));
          next();
        } else {
          next();  // endif
        }
        VELO_TRY(expect_block_end());
        return s;
      }
    }
    if (kw == "for") {
      s->kind = StmtKind::For;
      VELO_TRY(parse_targets(*s, "in"));
      if (!skip_name("in")) return err("expected 'in', got " + describe(cur()));
      VELO_ASSIGN_OR_RETURN(s->expr, parse_tuple(false, false, "recursive"));
      if (skip_name("if")) {
        VELO_ASSIGN_OR_RETURN(s->cond, parse_expression(true));
      }
      if (is_name("recursive")) return err("recursive loops are not supported");
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endfor", "else"}));
      if (skip_name("else")) {
        VELO_TRY(expect_block_end());
        VELO_ASSIGN_OR_RETURN(s->else_body, parse_body({"endfor"}));
      }
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "set") {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "." &&
          peek(2).type == Tok::Name) {
        s->kind = StmtKind::SetAttr;
        s->targets.push_back(cur().text);
        s->attr = peek(2).text;
        next(); next(); next();
        VELO_TRY(expect_op("="));
        VELO_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, false, nullptr));
        VELO_TRY(expect_block_end());
        return s;
      }
      VELO_TRY(parse_targets(*s, nullptr));
      if (skip_op("=")) {
        s->kind = StmtKind::Set;
        VELO_ASSIGN_OR_RETURN(s->expr, parse_tuple(true, false, nullptr));
        VELO_TRY(expect_block_end());
        return s;
      }
      if (s->unpack) return err("block set needs a single name");
      s->kind = StmtKind::SetBlock;
      if (is_op("|")) VELO_TRY(parse_filter_chain(s->filters));
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endset"}));
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "macro") {
      s->kind = StmtKind::Macro;
      VELO_ASSIGN_OR_RETURN(s->name, expect_name());
      VELO_TRY(parse_signature(*s));
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endmacro"}));
      next();
      if (cur().type == Tok::Name && cur().text == s->name) next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "call") {
      s->kind = StmtKind::CallBlock;
      if (is_op("(")) VELO_TRY(parse_signature(*s));
      VELO_ASSIGN_OR_RETURN(s->expr, parse_expression(true));
      if (s->expr->kind != ExprKind::Call) return err("expected a call after {% call %}");
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endcall"}));
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "filter") {
      s->kind = StmtKind::FilterBlock;
      VELO_TRY(parse_filter_chain(s->filters, true));
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endfilter"}));
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "with") {
      s->kind = StmtKind::With;
      while (cur().type != Tok::BlockEnd) {
        if (!s->targets.empty()) VELO_TRY(expect_op(","));
        VELO_ASSIGN_OR_RETURN(std::string n, expect_name());
        VELO_TRY(expect_op("="));
        VELO_ASSIGN_OR_RETURN(ExprP v, parse_expression(true));
        s->targets.push_back(n);
        s->defaults.push_back(std::move(v));
      }
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endwith"}));
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "generation") {  // HF's AssistantTracker tag: renders its body unchanged
      s->kind = StmtKind::Scope;
      VELO_TRY(expect_block_end());
      VELO_ASSIGN_OR_RETURN(s->body, parse_body({"endgeneration"}));
      next();
      VELO_TRY(expect_block_end());
      return s;
    }
    if (kw == "break" || kw == "continue") {
      s->kind = kw == "break" ? StmtKind::Break : StmtKind::Continue;
      VELO_TRY(expect_block_end());
      return s;
    }
    p_ -= 1;  // point the error at the keyword
    if (kw == "include" || kw == "import" || kw == "from" || kw == "extends" || kw == "block")
      return err("'" + kw + "' is not allowed: chat templates cannot load other templates");
    return err("unknown or unsupported tag '" + kw + "'");
  }

  // for/set targets: a name, or names separated by commas, optionally in parentheses.
  Status parse_targets(Stmt& s, const char* end_name) {
    bool paren = skip_op("(");
    while (true) {
      VELO_ASSIGN_OR_RETURN(std::string n, expect_name());
      s.targets.push_back(n);
      if (!skip_op(",")) break;
      s.unpack = true;
      if (paren && is_op(")")) break;
      if (end_name && is_name(end_name)) break;
      if (!paren && is_op("=")) break;
    }
    if (paren) {
      VELO_TRY(expect_op(")"));
      s.unpack = true;
    }
    return {};
  }

  Status parse_signature(Stmt& s) {
    VELO_TRY(expect_op("("));
    while (!is_op(")")) {
      if (!s.params.empty()) VELO_TRY(expect_op(","));
      if (is_op(")")) break;
      VELO_ASSIGN_OR_RETURN(std::string n, expect_name());
      ExprP def;
      if (skip_op("=")) {
        VELO_ASSIGN_OR_RETURN(def, parse_expression(true));
      }
      s.params.push_back(n);
      s.defaults.push_back(std::move(def));
    }
    next();
    return {};
  }

  // "| f(args) | g" (or "f | g" for {% filter %}); each node has a null subject.
  Status parse_filter_chain(std::vector<ExprP>& out, bool start_inline = false) {
    while (start_inline || skip_op("|")) {
      start_inline = false;
      VELO_ASSIGN_OR_RETURN(ExprP f, parse_filter_node(nullptr));
      out.push_back(std::move(f));
    }
    return {};
  }

  // ---- expressions --------------------------------------------------------

  // Comma-separated expressions; more than one (or a trailing comma) makes a tuple.
  Result<ExprP> parse_tuple(bool with_condexpr, bool explicit_parens, const char* extra_end) {
    int line = cur().line;
    std::vector<ExprP> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) VELO_TRY(expect_op(","));
      if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || is_op(")") ||
          (extra_end && is_name(extra_end)) || (extra_end == nullptr && false))
        break;
      VELO_ASSIGN_OR_RETURN(ExprP e, parse_expression(with_condexpr));
      args.push_back(std::move(e));
      if (is_op(",")) is_tuple = true; else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) return err("expected an expression, got " + describe(cur()));
    }
    auto t = node(ExprKind::TupleLit, line);
    t->kids = std::move(args);
    return finish(std::move(t));
  }

  Result<ExprP> parse_expression(bool with_condexpr) {
    DepthGuard g(expr_depth_);
    if (expr_depth_ > lim_.max_expr_depth) return err("expression nested too deeply");
    if (!with_condexpr) return parse_or();
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP e, parse_or());
    while (skip_name("if")) {
      VELO_ASSIGN_OR_RETURN(ExprP test, parse_or());
      ExprP other;
      if (skip_name("else")) {
        VELO_ASSIGN_OR_RETURN(other, parse_expression(true));
      }
      auto c = node(ExprKind::Cond, line);
      c->kids.push_back(std::move(e));
      c->kids.push_back(std::move(test));
      c->kids.push_back(std::move(other));
      VELO_ASSIGN_OR_RETURN(e, finish(std::move(c)));
    }
    return e;
  }

  Result<ExprP> binary(ExprKind k, std::string op, ExprP l, ExprP r, int line) {
    auto b = node(k, line);
    b->name = std::move(op);
    b->kids.push_back(std::move(l));
    b->kids.push_back(std::move(r));
    return finish(std::move(b));
  }

  Result<ExprP> parse_or() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_and());
    while (skip_name("or")) {
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_and());
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::Or, "or", std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_and() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_not());
    while (skip_name("and")) {
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_not());
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::And, "and", std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_not() {
    DepthGuard g(expr_depth_);
    if (expr_depth_ > lim_.max_expr_depth) return err("expression nested too deeply");
    if (is_name("not")) {
      int line = cur().line;
      next();
      VELO_ASSIGN_OR_RETURN(ExprP e, parse_not());
      auto u = node(ExprKind::Unary, line);
      u->name = "not";
      u->kids.push_back(std::move(e));
      return finish(std::move(u));
    }
    return parse_compare();
  }

  Result<ExprP> parse_compare() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP first, parse_math1());
    ExprP cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      VELO_ASSIGN_OR_RETURN(ExprP rhs, parse_math1());
      if (!cmp) {
        cmp = node(ExprKind::Compare, line);
        cmp->kids.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->kids.push_back(std::move(rhs));
    }
    if (cmp) return finish(std::move(cmp));
    return first;
  }

  Result<ExprP> parse_math1() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_concat());
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      next();
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_concat());
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::Binary, op, std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_concat() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_math2());
    while (skip_op("~")) {
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_math2());
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::Binary, "~", std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_math2() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_pow());
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      next();
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_pow());
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::Binary, op, std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_pow() {
    int line = cur().line;
    VELO_ASSIGN_OR_RETURN(ExprP l, parse_unary(true));
    while (skip_op("**")) {
      VELO_ASSIGN_OR_RETURN(ExprP r, parse_unary(true));
      VELO_ASSIGN_OR_RETURN(l, binary(ExprKind::Binary, "**", std::move(l), std::move(r), line));
    }
    return l;
  }

  Result<ExprP> parse_unary(bool with_filter) {
    DepthGuard g(expr_depth_);
    if (expr_depth_ > lim_.max_expr_depth) return err("expression nested too deeply");
    int line = cur().line;
    ExprP e;
    if (is_op("-") || is_op("+")) {
      std::string op = cur().text;
      next();
      VELO_ASSIGN_OR_RETURN(ExprP inner, parse_unary(false));
      e = node(ExprKind::Unary, line);
      e->name = op;
      e->kids.push_back(std::move(inner));
      VELO_ASSIGN_OR_RETURN(e, finish(std::move(e)));
    } else {
      VELO_ASSIGN_OR_RETURN(e, parse_primary());
    }
    VELO_ASSIGN_OR_RETURN(e, parse_postfix(std::move(e)));
    if (with_filter) {
      VELO_ASSIGN_OR_RETURN(e, parse_filter_expr(std::move(e)));
    }
    return e;
  }

  Result<ExprP> parse_primary() {
    const Token& tk = cur();
    int line = tk.line;
    if (tk.type == Tok::Name) {
      auto e = node(ExprKind::Const, line);
      const std::string& n = tk.text;
      if (n == "true" || n == "True") e->value = Value::boolean(true);
      else if (n == "false" || n == "False") e->value = Value::boolean(false);
      else if (n == "none" || n == "None") e->value = Value::none();
      else { e->kind = ExprKind::Name; e->name = n; }
      next();
      return e;
    }
    if (tk.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) { s += cur().text; next(); }
      auto e = node(ExprKind::Const, line);
      e->value = Value::string(std::move(s));
      return e;
    }
    if (tk.type == Tok::Int || tk.type == Tok::Float) {
      auto e = node(ExprKind::Const, line);
      errno = 0;
      if (tk.type == Tok::Int) {
        char* end = nullptr;
        long long v = std::strtoll(tk.text.c_str(), &end, 10);
        if (errno == ERANGE) return err("integer literal too large");
        e->value = Value::integer(v);
      } else {
        e->value = Value::number(std::strtod(tk.text.c_str(), nullptr));
      }
      next();
      return e;
    }
    if (skip_op("(")) {
      VELO_ASSIGN_OR_RETURN(ExprP e, parse_tuple(true, true, nullptr));
      VELO_TRY(expect_op(")"));
      return e;
    }
    if (skip_op("[")) {
      auto e = node(ExprKind::ListLit, line);
      while (!is_op("]")) {
        if (!e->kids.empty()) VELO_TRY(expect_op(","));
        if (is_op("]")) break;
        VELO_ASSIGN_OR_RETURN(ExprP x, parse_expression(true));
        e->kids.push_back(std::move(x));
      }
      next();
      return finish(std::move(e));
    }
    if (skip_op("{")) {
      auto e = node(ExprKind::DictLit, line);
      while (!is_op("}")) {
        if (!e->kids.empty()) VELO_TRY(expect_op(","));
        if (is_op("}")) break;
        VELO_ASSIGN_OR_RETURN(ExprP k, parse_expression(true));
        VELO_TRY(expect_op(":"));
        VELO_ASSIGN_OR_RETURN(ExprP v, parse_expression(true));
        e->kids.push_back(std::move(k));
        e->kids.push_back(std::move(v));
      }
      next();
      return finish(std::move(e));
    }
    return err("unexpected " + describe(tk));
  }

  Result<ExprP> parse_postfix(ExprP e) {
    while (true) {
      int line = cur().line;
      if (skip_op(".")) {
        if (cur().type == Tok::Name) {
          auto a = node(ExprKind::Attr, line);
          a->name = cur().text;
          a->kids.push_back(std::move(e));
          e = std::move(a);
          next();
        } else if (cur().type == Tok::Int) {
          auto a = node(ExprKind::Item, line);
          auto k = node(ExprKind::Const, line);
          k->value = Value::integer(std::strtoll(cur().text.c_str(), nullptr, 10));
          a->kids.push_back(std::move(e));
          a->kids.push_back(std::move(k));
          e = std::move(a);
          next();
        } else {
          return err("expected an attribute name after '.'");
        }
      } else if (skip_op("[")) {
        VELO_ASSIGN_OR_RETURN(e, parse_subscript(std::move(e), line));
      } else if (is_op("(")) {
        VELO_ASSIGN_OR_RETURN(e, parse_call(std::move(e)));
      } else {
        return e;
      }
      VELO_ASSIGN_OR_RETURN(e, finish(std::move(e)));
    }
  }

  Result<ExprP> parse_subscript(ExprP obj, int line) {
    // One index or slice; "a, b" indexes with a tuple.
    std::vector<ExprP> parts;
    bool is_slice = false;
    ExprP idx;
    auto parse_part = [&]() -> Result<ExprP> {
      if (is_op(":") || is_op("]") || is_op(",")) return ExprP{};
      return parse_expression(true);
    };
    VELO_ASSIGN_OR_RETURN(ExprP a, parse_part());
    if (is_op(":")) {
      is_slice = true;
      next();
      VELO_ASSIGN_OR_RETURN(ExprP b, parse_part());
      ExprP c;
      if (skip_op(":")) {
        VELO_ASSIGN_OR_RETURN(c, parse_part());
      }
      auto s = node(ExprKind::Slice, line);
      s->kids.push_back(std::move(obj));
      s->kids.push_back(std::move(a));
      s->kids.push_back(std::move(b));
      s->kids.push_back(std::move(c));
      VELO_TRY(expect_op("]"));
      return s;
    }
    if (!a) return err("expected an index");
    if (is_op(",")) {
      auto t = node(ExprKind::TupleLit, line);
      t->kids.push_back(std::move(a));
      while (skip_op(",")) {
        if (is_op("]")) break;
        VELO_ASSIGN_OR_RETURN(ExprP x, parse_expression(true));
        t->kids.push_back(std::move(x));
      }
      a = std::move(t);
    }
    (void)is_slice;
    VELO_TRY(expect_op("]"));
    auto it = node(ExprKind::Item, line);
    it->kids.push_back(std::move(obj));
    it->kids.push_back(std::move(a));
    return it;
  }

  // "(args, name=value)" appended to `e` (whose kids[0] is already the subject).
  Status parse_args(Expr& e) {
    VELO_TRY(expect_op("("));
    std::vector<ExprP> pos;
    std::vector<ExprP> kwv;
    while (!is_op(")")) {
      if (!pos.empty() || !kwv.empty()) VELO_TRY(expect_op(","));
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) return err("*args and **kwargs in calls are not supported");
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        e.kwnames.push_back(cur().text);
        next();
        next();
        VELO_ASSIGN_OR_RETURN(ExprP v, parse_expression(true));
        kwv.push_back(std::move(v));
      } else {
        if (!kwv.empty()) return err("positional argument follows keyword argument");
        VELO_ASSIGN_OR_RETURN(ExprP v, parse_expression(true));
        pos.push_back(std::move(v));
      }
    }
    next();
    e.npos = pos.size();
    for (auto& x : pos) e.kids.push_back(std::move(x));
    for (auto& x : kwv) e.kids.push_back(std::move(x));
    return {};
  }

  Result<ExprP> parse_call(ExprP callee) {
    auto c = node(ExprKind::Call, cur().line);
    c->kids.push_back(std::move(callee));
    VELO_TRY(parse_args(*c));
    return c;
  }

  Result<std::string> dotted_name() {
    VELO_ASSIGN_OR_RETURN(std::string n, expect_name());
    while (is_op(".") && peek().type == Tok::Name) {
      next();
      n += "." + cur().text;
      next();
    }
    return n;
  }

  Result<ExprP> parse_filter_node(ExprP subject) {
    auto f = node(ExprKind::Filter, cur().line);
    VELO_ASSIGN_OR_RETURN(f->name, dotted_name());
    f->kids.push_back(std::move(subject));
    if (is_op("(")) VELO_TRY(parse_args(*f));
    return f;
  }

  Result<ExprP> parse_filter_expr(ExprP e) {
    while (true) {
      if (skip_op("|")) {
        VELO_ASSIGN_OR_RETURN(e, parse_filter_node(std::move(e)));
      } else if (is_name("is")) {
        next();
        auto t = node(ExprKind::Test, cur().line);
        t->negate = skip_name("not");
        VELO_ASSIGN_OR_RETURN(t->name, dotted_name());
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          VELO_TRY(parse_args(*t));
        } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                    cur().type == Tok::Float || is_op("(") || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) return err("you cannot chain multiple tests with 'is'");
          VELO_ASSIGN_OR_RETURN(ExprP arg, parse_primary());
          VELO_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
          t->kids.push_back(std::move(arg));
          t->npos = 1;
        }
        e = std::move(t);
      } else if (is_op("(")) {
        VELO_ASSIGN_OR_RETURN(e, parse_call(std::move(e)));
      } else {
        return e;
      }
      VELO_ASSIGN_OR_RETURN(e, finish(std::move(e)));
    }
  }
};

}  // namespace

Result<Body> parse(std::string_view source, const ParseLimits& limits) {
  VELO_ASSIGN_OR_RETURN(std::vector<Token> toks, lex(source, limits.max_tokens));
  Parser p(std::move(toks), limits);
  return p.parse_template();
}

}  // namespace velo::jinja
