#include "tokenizer/jinja/interp.h"

#include <ctime>

namespace velo::jinja {

namespace {
constexpr uint32_t kMaxNesting = 1500;  // eval + block frames on the C++ stack, whatever the limits say
constexpr uint64_t kMaxRange = 100000;    // jinja2's sandbox MAX_RANGE
}  // namespace

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

Interp::~Interp() {
  for (auto& ns : namespaces_) {
    ns->items.clear();
    ns->index.clear();
  }
}

Status Interp::charge(uint64_t n) {
  steps_ += n;
  if (steps_ > lim_.max_steps)
    return make_error("template exceeded its step limit (" + std::to_string(lim_.max_steps) + " steps)");
  return {};
}

Status Interp::check_string(size_t bytes) const {
  if (bytes > lim_.max_output_bytes)
    return make_error("template built a string larger than the output limit (" +
                      std::to_string(lim_.max_output_bytes) + " bytes)");
  return {};
}

Status Interp::emit(std::string& out, std::string_view text) {
  if (out.size() + text.size() > lim_.max_output_bytes)
    return make_error("template output exceeds the limit of " + std::to_string(lim_.max_output_bytes) +
                      " bytes");
  VELO_TRY(charge(1 + text.size() / 64));
  out.append(text);
  return {};
}

Value Interp::make_namespace() {
  auto d = std::make_shared<Dict>();
  namespaces_.push_back(d);
  return Value::make_dict(d, Kind::Namespace);
}

Value Interp::lookup(const std::string& name, const FrameP& f) const {
  if (const Value* v = f->find(name)) return *v;
  return Value::undefined(name);
}

Result<Value> Interp::call(const Value& fn, CallArgs& args) {
  if (fn.kind == Kind::Callable) return fn.fn->fn(args);
  if (fn.is_undefined()) return make_error(undefined_message(fn));
  return make_error("'" + type_name(fn) + "' object is not callable");
}

// ---- globals ----------------------------------------------------------------

void Interp::install_globals(Frame& root) {
  root.vars["range"] = Value::callable("range", [this](CallArgs& a) -> Result<Value> {
    if (a.pos.empty() || a.pos.size() > 3 || !a.kw.empty())
      return make_error("range expected 1 to 3 integer arguments");
    for (const auto& v : a.pos)
      if (!v.is_int()) return make_error("'" + type_name(v) + "' object cannot be interpreted as an integer");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = a.pos[0].as_int();
    } else {
      start = a.pos[0].as_int();
      stop = a.pos[1].as_int();
      if (a.pos.size() == 3) step = a.pos[2].as_int();
    }
    if (step == 0) return make_error("range() arg 3 must not be zero");
    // Count in 128-bit arithmetic: no overflow whatever the bounds.
    __int128 span = step > 0 ? (__int128)stop - start : (__int128)start - stop;
    __int128 astep = step > 0 ? (__int128)step : -(__int128)step;
    __int128 n = span <= 0 ? 0 : (span + astep - 1) / astep;
    if (n > static_cast<__int128>(kMaxRange))
      return make_error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    auto cnt = static_cast<uint64_t>(n);
    VELO_TRY(charge(cnt));
    List out;
    out.reserve(cnt);
    for (uint64_t k = 0; k < cnt; ++k)
      out.push_back(Value::integer(static_cast<int64_t>((__int128)start + (__int128)k * step)));
    return Value::make_list(std::move(out));
  });
  root.vars["dict"] = Value::callable("dict", [](CallArgs& a) -> Result<Value> {
    auto d = std::make_shared<Dict>();
    if (a.pos.size() > 1) return make_error("dict expected at most 1 argument");
    if (a.pos.size() == 1) {
      const Value& src = a.pos[0];
      if (src.kind != Kind::Dict) return make_error("dict() argument must be a mapping");
      for (const auto& [k, v] : src.dict->items) VELO_TRY(d->set(k, v));
    }
    for (auto& [k, v] : a.kw) d->set(k, v);
    return Value::make_dict(d);
  });
  root.vars["namespace"] = Value::callable("namespace", [this](CallArgs& a) -> Result<Value> {
    Value ns = make_namespace();
    if (a.pos.size() > 1) return make_error("namespace expected at most 1 positional argument");
    if (a.pos.size() == 1) {
      if (a.pos[0].kind != Kind::Dict) return make_error("namespace() argument must be a mapping");
      for (const auto& [k, v] : a.pos[0].dict->items) VELO_TRY(ns.dict->set(k, v));
    }
    for (auto& [k, v] : a.kw) ns.dict->set(k, v);
    return ns;
  });
  root.vars["raise_exception"] = Value::callable("raise_exception", [](CallArgs& a) -> Result<Value> {
    std::string msg = a.pos.empty() ? std::string() : py_str(a.pos[0]);
    return make_error("template raised an exception: " + msg);
  });
  root.vars["strftime_now"] = Value::callable("strftime_now", [](CallArgs& a) -> Result<Value> {
    if (a.pos.size() != 1 || !a.pos[0].is_string()) return make_error("strftime_now expects a format string");
    const std::string& fmt = a.pos[0].s;
    if (fmt.size() > 256) return make_error("strftime_now format too long");
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::string buf(1024, '\0');
    size_t n = fmt.empty() ? 0 : std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
    buf.resize(n);
    return Value::string(buf);
  });
}

// ---- rendering --------------------------------------------------------------

Result<std::string> Interp::render(const Body& body, const Value& context) {
  auto root = std::make_shared<Frame>();
  install_globals(*root);
  if (context.kind == Kind::Dict)
    for (const auto& [k, v] : context.dict->items)
      if (k.is_string()) root->vars[k.s] = v;
  std::string out;
  VELO_TRY(exec(body, root, out));
  if (flow_ != Flow::Normal) return make_error("'break' or 'continue' outside of a loop");
  return out;
}

Status Interp::exec(const Body& body, const FrameP& f, std::string& out) {
  // Blocks and expressions share one nesting budget so that macros calling
  // macros inside nested blocks cannot exhaust the C++ stack.
  if (eval_depth_ >= kMaxNesting) return make_error("template nested too deeply");
  ++eval_depth_;
  struct Dec { uint32_t& d; ~Dec() { --d; } } dec{eval_depth_};
  for (const auto& s : body) {
    VELO_TRY(exec_stmt(*s, f, out));
    if (flow_ != Flow::Normal) return {};
  }
  return {};
}

static Error at_line(int line, const Error& e) {
  if (e.message.rfind("template ", 0) == 0 && e.message.find(" at line ") != std::string::npos) return e;
  return make_error("template error at line " + std::to_string(line) + ": " + e.message);
}

Status Interp::assign(const Stmt& s, const FrameP& f, Value v) {
  if (!s.unpack) {
    f->vars[s.targets[0]] = std::move(v);
    return {};
  }
  VELO_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(*this, v));
  if (items.size() != s.targets.size())
    return make_error(items.size() > s.targets.size()
                          ? "too many values to unpack (expected " + std::to_string(s.targets.size()) + ")"
                          : "not enough values to unpack (expected " + std::to_string(s.targets.size()) +
                                ", got " + std::to_string(items.size()) + ")");
  for (size_t k = 0; k < items.size(); ++k) f->vars[s.targets[k]] = std::move(items[k]);
  return {};
}

Status Interp::exec_stmt(const Stmt& s, const FrameP& f, std::string& out) {
  auto r = [&]() -> Status {
    VELO_TRY(charge(1));
    switch (s.kind) {
      case StmtKind::Text: return emit(out, s.text);
      case StmtKind::Output: {
        VELO_ASSIGN_OR_RETURN(Value v, eval(*s.expr, f));
        return emit(out, py_str(v));
      }
      case StmtKind::If: {
        for (size_t k = 0; k < s.branches.size(); ++k) {
          if (k < s.conds.size()) {
            VELO_ASSIGN_OR_RETURN(Value c, eval(*s.conds[k], f));
            if (!truthy(c)) continue;
          }
          return exec(s.branches[k], f, out);
        }
        return {};
      }
      case StmtKind::For: return exec_for(s, f, out);
      case StmtKind::Set: {
        VELO_ASSIGN_OR_RETURN(Value v, eval(*s.expr, f));
        return assign(s, f, std::move(v));
      }
      case StmtKind::SetAttr: {
        Value target = lookup(s.targets[0], f);
        if (target.kind != Kind::Namespace)
          return make_error("cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
        VELO_ASSIGN_OR_RETURN(Value v, eval(*s.expr, f));
        target.dict->set(s.attr, std::move(v));
        return {};
      }
      case StmtKind::SetBlock: {
        std::string captured;
        VELO_TRY(exec(s.body, f, captured));
        Value v = Value::string(std::move(captured));
        for (const auto& flt : s.filters) {
          VELO_ASSIGN_OR_RETURN(v, eval_filter(*flt, f, v));
        }
        return assign(s, f, std::move(v));
      }
      case StmtKind::Macro:
        f->vars[s.name] = make_macro(s, f, s.name);
        return {};
      case StmtKind::CallBlock: {
        const Expr& call = *s.expr;
        VELO_ASSIGN_OR_RETURN(Value callee, eval(*call.kids[0], f));
        VELO_ASSIGN_OR_RETURN(CallArgs args, eval_args(call, f, 1));
        args.kw.emplace_back("caller", make_macro(s, f, "caller"));
        VELO_ASSIGN_OR_RETURN(Value v, this->call(callee, args));
        return emit(out, py_str(v));
      }
      case StmtKind::FilterBlock: {
        std::string captured;
        VELO_TRY(exec(s.body, f, captured));
        Value v = Value::string(std::move(captured));
        for (const auto& flt : s.filters) {
          VELO_ASSIGN_OR_RETURN(v, eval_filter(*flt, f, v));
        }
        return emit(out, py_str(v));
      }
      case StmtKind::With: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        for (size_t k = 0; k < s.targets.size(); ++k) {
          VELO_ASSIGN_OR_RETURN(Value v, eval(*s.defaults[k], f));
          inner->vars[s.targets[k]] = std::move(v);
        }
        return exec(s.body, inner, out);
      }
      case StmtKind::Break:
      case StmtKind::Continue:
        if (loop_depth_ == 0) return make_error("'break' or 'continue' outside of a loop");
        flow_ = s.kind == StmtKind::Break ? Flow::Break : Flow::Continue;
        return {};
      case StmtKind::Scope: return exec(s.body, f, out);
    }
    return {};
  }();
  if (!r.ok()) return at_line(s.line, r.error());
  return {};
}

Status Interp::exec_for(const Stmt& s, const FrameP& f, std::string& out) {
  VELO_ASSIGN_OR_RETURN(Value seq, eval(*s.expr, f));
  VELO_ASSIGN_OR_RETURN(std::vector<Value> items, iterate(*this, seq));
  if (s.cond) {  // "for x in xs if cond": filter first, loop.* counts the kept items
    std::vector<Value> kept;
    for (auto& it : items) {
      VELO_TRY(charge(1));
      auto tmp = std::make_shared<Frame>();
      tmp->parent = f;
      VELO_TRY(assign(s, tmp, it));
      VELO_ASSIGN_OR_RETURN(Value c, eval(*s.cond, tmp));
      if (truthy(c)) kept.push_back(std::move(it));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto inner = std::make_shared<Frame>();
    inner->parent = f;
    return exec(s.else_body, inner, out);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  auto shared_items = std::make_shared<std::vector<Value>>(items);
  ++loop_depth_;
  Status st;
  for (int64_t k = 0; k < n; ++k) {
    VELO_TRY(charge(1));
    auto inner = std::make_shared<Frame>();
    inner->parent = f;
    st = assign(s, inner, items[k]);
    if (!st.ok()) break;
    auto loop = std::make_shared<Dict>();
    loop->set("index", Value::integer(k + 1));
    loop->set("index0", Value::integer(k));
    loop->set("revindex", Value::integer(n - k));
    loop->set("revindex0", Value::integer(n - k - 1));
    loop->set("first", Value::boolean(k == 0));
    loop->set("last", Value::boolean(k == n - 1));
    loop->set("length", Value::integer(n));
    loop->set("depth", Value::integer(1));
    loop->set("depth0", Value::integer(0));
    loop->set("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
    loop->set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
    loop->set("cycle", Value::callable("cycle", [k](CallArgs& a) -> Result<Value> {
      if (a.pos.empty()) return make_error("no items for cycling given");
      return a.pos[static_cast<size_t>(k) % a.pos.size()];
    }));
    inner->vars["loop"] = Value::make_dict(loop, Kind::Object);
    st = exec(s.body, inner, out);
    if (!st.ok()) break;
    if (flow_ == Flow::Break) { flow_ = Flow::Normal; break; }
    flow_ = Flow::Normal;
  }
  --loop_depth_;
  return st;
}

namespace {

// Whether a macro body mentions `name` (jinja2 only accepts extra arguments
// when the body uses varargs / kwargs).
bool expr_uses(const Expr* e, const std::string& name) {
  if (!e) return false;
  if (e->kind == ExprKind::Name && e->name == name) return true;
  for (const auto& k : e->kids)
    if (expr_uses(k.get(), name)) return true;
  return false;
}

bool body_uses(const Body& b, const std::string& name) {
  for (const auto& s : b) {
    if (expr_uses(s->expr.get(), name) || expr_uses(s->cond.get(), name)) return true;
    for (const auto& c : s->conds)
      if (expr_uses(c.get(), name)) return true;
    for (const auto& d : s->defaults)
      if (expr_uses(d.get(), name)) return true;
    for (const auto& f : s->filters)
      if (expr_uses(f.get(), name)) return true;
    for (const auto& br : s->branches)
      if (body_uses(br, name)) return true;
    if (body_uses(s->body, name) || body_uses(s->else_body, name)) return true;
  }
  return false;
}

}  // namespace

Value Interp::make_macro(const Stmt& s, const FrameP& f, const std::string& name) {
  std::weak_ptr<Frame> weak = f;
  const Stmt* def = &s;
  const bool takes_varargs = body_uses(s.body, "varargs");
  const bool takes_kwargs = body_uses(s.body, "kwargs");
  return Value::callable(name, [this, weak, def, name, takes_varargs, takes_kwargs](CallArgs& a) -> Result<Value> {
    FrameP parent = weak.lock();
    if (!parent) return make_error("macro '" + name + "' called outside the scope that defined it");
    if (call_depth_ >= lim_.max_depth)
      return make_error("template recursion too deep (limit " + std::to_string(lim_.max_depth) + ")");
    VELO_TRY(charge(1));
    auto frame = std::make_shared<Frame>();
    frame->parent = parent;
    const auto& params = def->params;
    if (a.pos.size() > params.size() && !takes_varargs)
      return make_error("macro '" + name + "' takes not more than " + std::to_string(params.size()) +
                        " argument(s)");
    List varargs;
    for (size_t k = 0; k < a.pos.size(); ++k) {
      if (k < params.size()) frame->vars[params[k]] = a.pos[k];
      else varargs.push_back(a.pos[k]);
    }
    auto kwargs = std::make_shared<Dict>();
    for (auto& [k, v] : a.kw) {
      bool is_param = false;
      for (size_t p = 0; p < params.size(); ++p)
        if (params[p] == k) {
          if (p < a.pos.size()) return make_error("macro '" + name + "' got multiple values for argument '" + k + "'");
          is_param = true;
        }
      if (is_param || k == "caller") frame->vars[k] = v;
      else if (takes_kwargs) kwargs->set(k, v);
      else return make_error("macro '" + name + "' takes no keyword argument '" + k + "'");
    }
    ++call_depth_;
    struct Dec { uint32_t& d; ~Dec() { --d; } } dec{call_depth_};
    for (size_t p = 0; p < params.size(); ++p) {
      if (frame->vars.count(params[p])) continue;
      if (def->defaults[p]) {
        VELO_ASSIGN_OR_RETURN(Value dv, eval(*def->defaults[p], frame));
        frame->vars[params[p]] = std::move(dv);
      } else {
        frame->vars[params[p]] = Value::undefined("!parameter '" + params[p] + "' was not provided");
      }
    }
    frame->vars["varargs"] = Value::make_list(std::move(varargs), true);
    frame->vars["kwargs"] = Value::make_dict(kwargs);
    std::string out;
    uint32_t saved_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue do not cross a macro boundary
    Status st = exec(def->body, frame, out);
    loop_depth_ = saved_loops;
    VELO_TRY(st);
    return Value::string(std::move(out));
  });
}

// ---- expressions ------------------------------------------------------------

Result<CallArgs> Interp::eval_args(const Expr& e, const FrameP& f, size_t first) {
  CallArgs args;
  for (size_t k = 0; k < e.npos; ++k) {
    VELO_ASSIGN_OR_RETURN(Value v, eval(*e.kids[first + k], f));
    args.pos.push_back(std::move(v));
  }
  for (size_t k = 0; k < e.kwnames.size(); ++k) {
    VELO_ASSIGN_OR_RETURN(Value v, eval(*e.kids[first + e.npos + k], f));
    args.kw.emplace_back(e.kwnames[k], std::move(v));
  }
  return args;
}

Result<Value> Interp::eval_filter(const Expr& e, const FrameP& f, const Value& subject) {
  VELO_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, f, 1));
  return filter(e.name, subject, args);
}

Result<Value> Interp::eval(const Expr& e, const FrameP& f) {
  if (eval_depth_ >= kMaxNesting) return make_error("template nested too deeply");
  ++eval_depth_;
  auto r = eval_inner(e, f);
  --eval_depth_;
  return r;
}

Result<Value> Interp::eval_inner(const Expr& e, const FrameP& f) {
  VELO_TRY(charge(1));
  switch (e.kind) {
    case ExprKind::Const: return e.value;
    case ExprKind::Name: return lookup(e.name, f);
    case ExprKind::Attr: {
      VELO_ASSIGN_OR_RETURN(Value obj, eval(*e.kids[0], f));
      return get_attr(*this, obj, e.name);
    }
    case ExprKind::Item: {
      VELO_ASSIGN_OR_RETURN(Value obj, eval(*e.kids[0], f));
      VELO_ASSIGN_OR_RETURN(Value key, eval(*e.kids[1], f));
      return get_item(*this, obj, key);
    }
    case ExprKind::Slice: {
      VELO_ASSIGN_OR_RETURN(Value obj, eval(*e.kids[0], f));
      Value parts[3] = {Value::none(), Value::none(), Value::none()};
      for (int k = 0; k < 3; ++k)
        if (e.kids[1 + k]) {
          VELO_ASSIGN_OR_RETURN(parts[k], eval(*e.kids[1 + k], f));
        }
      return get_slice(*this, obj, parts[0], parts[1], parts[2]);
    }
    case ExprKind::Call: {
      VELO_ASSIGN_OR_RETURN(Value callee, eval(*e.kids[0], f));
      VELO_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, f, 1));
      return call(callee, args);
    }
    case ExprKind::Filter: {
      if (!e.kids[0]) return make_error("filter without a subject");
      VELO_ASSIGN_OR_RETURN(Value subject, eval(*e.kids[0], f));
      return eval_filter(e, f, subject);
    }
    case ExprKind::Test: {
      VELO_ASSIGN_OR_RETURN(Value subject, eval(*e.kids[0], f));
      VELO_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, f, 1));
      VELO_ASSIGN_OR_RETURN(bool r, test(e.name, subject, args));
      return Value::boolean(e.negate ? !r : r);
    }
    case ExprKind::Unary: {
      VELO_ASSIGN_OR_RETURN(Value v, eval(*e.kids[0], f));
      if (e.name == "not") return Value::boolean(!truthy(v));
      if (v.is_undefined()) return make_error(undefined_message(v));
      if (v.kind == Kind::Float) return Value::number(e.name == "-" ? -v.f : v.f);
      if (v.is_int()) {
        int64_t x = v.as_int();
        if (e.name == "+") return Value::integer(x);
        if (x == INT64_MIN) return make_error("integer overflow");
        return Value::integer(-x);
      }
      return make_error("bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
    }
    case ExprKind::And: {
      VELO_ASSIGN_OR_RETURN(Value l, eval(*e.kids[0], f));
      if (!truthy(l)) return l;
      return eval(*e.kids[1], f);
    }
    case ExprKind::Or: {
      VELO_ASSIGN_OR_RETURN(Value l, eval(*e.kids[0], f));
      if (truthy(l)) return l;
      return eval(*e.kids[1], f);
    }
    case ExprKind::Binary: {
      VELO_ASSIGN_OR_RETURN(Value l, eval(*e.kids[0], f));
      VELO_ASSIGN_OR_RETURN(Value r, eval(*e.kids[1], f));
      return binary_op(*this, e.name, l, r);
    }
    case ExprKind::Compare: {
      VELO_ASSIGN_OR_RETURN(Value l, eval(*e.kids[0], f));
      for (size_t k = 0; k < e.ops.size(); ++k) {
        VELO_ASSIGN_OR_RETURN(Value r, eval(*e.kids[k + 1], f));
        const std::string& op = e.ops[k];
        bool ok;
        if (op == "==") ok = equals(l, r);
        else if (op == "!=") ok = !equals(l, r);
        else if (op == "in" || op == "notin") {
          VELO_ASSIGN_OR_RETURN(bool c, contains(r, l));
          ok = op == "in" ? c : !c;
        } else {
          VELO_ASSIGN_OR_RETURN(int c, compare(l, r));
          ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!ok) return Value::boolean(false);
        l = std::move(r);
      }
      return Value::boolean(true);
    }
    case ExprKind::Cond: {
      VELO_ASSIGN_OR_RETURN(Value c, eval(*e.kids[1], f));
      if (truthy(c)) return eval(*e.kids[0], f);
      if (e.kids[2]) return eval(*e.kids[2], f);
      return Value::undefined("!the inline if-expression evaluated to false and no else section was defined");
    }
    case ExprKind::ListLit:
    case ExprKind::TupleLit: {
      List items;
      for (const auto& k : e.kids) {
        VELO_ASSIGN_OR_RETURN(Value v, eval(*k, f));
        items.push_back(std::move(v));
      }
      return Value::make_list(std::move(items), e.kind == ExprKind::TupleLit);
    }
    case ExprKind::DictLit: {
      auto d = std::make_shared<Dict>();
      for (size_t k = 0; k + 1 < e.kids.size(); k += 2) {
        VELO_ASSIGN_OR_RETURN(Value key, eval(*e.kids[k], f));
        VELO_ASSIGN_OR_RETURN(Value v, eval(*e.kids[k + 1], f));
        VELO_TRY(d->set(std::move(key), std::move(v)));
      }
      return Value::make_dict(d);
    }
  }
  return make_error("unsupported expression");
}

}  // namespace velo::jinja
