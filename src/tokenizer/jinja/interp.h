// Tree-walking interpreter for parsed templates. Every render runs in a
// sandbox: no file, environment or attribute access beyond plain data, with
// budgets on steps, recursion and output (TemplateLimits).
#pragma once
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/ast.h"

namespace velo::jinja {

struct Frame {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Frame> parent;
  const Value* find(const std::string& name) const;
};
using FrameP = std::shared_ptr<Frame>;

class Interp {
 public:
  explicit Interp(const TemplateLimits& limits) : lim_(limits) {}
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // `context` must be a Dict; its entries become template variables.
  Result<std::string> render(const Body& body, const Value& context);

  // Budget checks used by filters and methods for work proportional to data size.
  Status charge(uint64_t steps);
  Status check_string(size_t bytes) const;  // a string value may not exceed the output limit
  Result<Value> call(const Value& fn, CallArgs& args);
  Result<Value> filter(const std::string& name, const Value& subject, CallArgs& args);
  Result<bool> test(const std::string& name, const Value& v, CallArgs& args);
  bool has_test(const std::string& name) const;
  bool has_filter(const std::string& name) const;
  Value make_namespace();

 private:
  enum class Flow { Normal, Break, Continue };

  Status exec(const Body& body, const FrameP& f, std::string& out);
  Status exec_stmt(const Stmt& s, const FrameP& f, std::string& out);
  Status exec_for(const Stmt& s, const FrameP& f, std::string& out);
  Status assign(const Stmt& s, const FrameP& f, Value v);
  Status emit(std::string& out, std::string_view text);
  Result<Value> eval(const Expr& e, const FrameP& f);
  Result<Value> eval_inner(const Expr& e, const FrameP& f);
  Result<CallArgs> eval_args(const Expr& e, const FrameP& f, size_t first);
  Result<Value> eval_filter(const Expr& e, const FrameP& f, const Value& subject);
  Value make_macro(const Stmt& s, const FrameP& f, const std::string& name);
  Value lookup(const std::string& name, const FrameP& f) const;
  void install_globals(Frame& root);

  TemplateLimits lim_;
  uint64_t steps_ = 0;
  uint32_t call_depth_ = 0;  // macro calls
  uint32_t eval_depth_ = 0;
  uint32_t loop_depth_ = 0;
  Flow flow_ = Flow::Normal;
  std::vector<std::shared_ptr<Dict>> namespaces_;  // cleared after a render to break cycles
};

// ---- operations shared by the interpreter, filters and methods (ops.cpp) ----
Result<Value> binary_op(Interp& in, const std::string& op, const Value& a, const Value& b);
Result<Value> get_attr(Interp& in, const Value& obj, const std::string& name);
Result<Value> get_item(Interp& in, const Value& obj, const Value& key);
Result<Value> get_slice(Interp& in, const Value& obj, const Value& a, const Value& b, const Value& c);
Result<std::vector<Value>> iterate(Interp& in, const Value& v);  // dicts yield keys
Result<bool> contains(const Value& container, const Value& item);
Result<std::string> percent_format(Interp& in, const std::string& fmt, const Value& args);
Result<Value> to_int(const Value& v);  // Python int() on numbers and numeric strings

// ---- methods of str, dict and list (methods.cpp) ----
// The bound method `obj.name`, or nullopt when the type has no such attribute.
std::optional<Value> bound_method(Interp& in, const Value& obj, const std::string& name);

// ---- JSON (json.cpp) ----
struct JsonStyle {
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_sep = ", ";  // Python's default: "," when indenting
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// Python json.dumps(v, ...) as HF's tojson filter calls it.
Result<std::string> to_json(Interp& in, const Value& v, const JsonStyle& style);

}  // namespace velo::jinja
