// Result<T>: a value or a one-line, user-readable error (C++20 has no std::expected).
#pragma once
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace velo {

struct Error {
  std::string message;  // one line, says what is wrong and, where possible, what to do
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}      // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  const std::string& message() const { return error().message; }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { assert(!ok_); return err_; }
  const std::string& message() const { return err_.message; }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Error make_error(std::string msg) { return Error{std::move(msg)}; }

}  // namespace velo

// Propagate an error from an expression returning Result<...>.
#define VELO_TRY(expr)                                   \
  do {                                                   \
    auto velo_try_r_ = (expr);                           \
    if (!velo_try_r_.ok()) return velo_try_r_.error();   \
  } while (0)

#define VELO_CONCAT_INNER_(a, b) a##b
#define VELO_CONCAT_(a, b) VELO_CONCAT_INNER_(a, b)
// VELO_ASSIGN_OR_RETURN(auto x, f()) - bind the value or return the error.
#define VELO_ASSIGN_OR_RETURN(lhs, expr) \
  VELO_ASSIGN_OR_RETURN_IMPL_(VELO_CONCAT_(velo_r_, __LINE__), lhs, expr)
#define VELO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.error();                \
  lhs = std::move(tmp).value()
