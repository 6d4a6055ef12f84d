// Syntax tree of a parsed template. Nodes own their children; the tree is
// immutable once parsed and outlives every render that uses it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace velo::jinja {

enum class ExprKind : uint8_t {
  Const,    // value
  Name,     // name
  Attr,     // kids[0].name
  Item,     // kids[0][kids[1]]
  Slice,    // kids[0][kids[1]:kids[2]:kids[3]] (missing parts are null)
  Call,     // kids[0](kids[1..npos], name=kids[...])
  Filter,   // kids[0] | name(args); kids[0] null inside {% filter %} blocks
  Test,     // kids[0] is [not] name(args)
  Unary,    // name in {"-", "+", "not"}
  And, Or,  // kids[0] and/or kids[1]
  Binary,   // kids[0] name kids[1]; name in + - * / // % ** ~
  Compare,  // kids[0] ops[0] kids[1] ops[1] kids[2] ...
  Cond,     // kids[0] if kids[1] else kids[2] (kids[2] may be null)
  ListLit, TupleLit, DictLit,  // DictLit kids: k0, v0, k1, v1, ...
};

struct Expr;
using ExprP = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::Const;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprP> kids;
  size_t npos = 0;                  // Call/Filter/Test: positional args are kids[1..npos]
  std::vector<std::string> kwnames;  // then one kid per keyword argument
  std::vector<std::string> ops;      // Compare
  bool negate = false;               // Test: "is not"
  uint32_t depth = 1;                // height of this subtree (bounded by the parser)
};

enum class StmtKind : uint8_t {
  Text, Output, If, For, Set, SetAttr, SetBlock, Macro, CallBlock, FilterBlock, With,
  Break, Continue, Scope,  // Scope: a body rendered as is ({% generation %})
};

struct Stmt;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Stmt {
  StmtKind kind = StmtKind::Text;
  int line = 0;
  std::string text;                  // Text
  ExprP expr;                        // Output, For iterable, Set value, CallBlock call
  std::vector<ExprP> conds;          // If: one per branch (else branch has none)
  std::vector<Body> branches;        // If: bodies (one more than conds when there is an else)
  Body body, else_body;              // For/Macro/SetBlock/CallBlock/FilterBlock/With/Scope
  std::vector<std::string> targets;  // For/Set target names (several for unpacking), With names
  bool unpack = false;               // For/Set: targets were a tuple
  std::string attr;                  // SetAttr: targets[0].attr = expr
  ExprP cond;                        // For: "if" filter
  std::string name;                  // Macro name
  std::vector<std::string> params;   // Macro/CallBlock parameters
  std::vector<ExprP> defaults;       // parallel to params (null when none); With values
  std::vector<ExprP> filters;        // FilterBlock / SetBlock filters (Filter nodes with null subject)
};

}  // namespace velo::jinja
