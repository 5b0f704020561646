// Status and Result<T>: the one error model of Backstop.
//
// A Status is either OK or carries a code and a human message that says what
// failed, where, and (when known) what to do. No exception crosses a module
// boundary: functions that can fail return Status or Result<T>.
//
// Thread-safety: values; safe to copy between threads.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace backstop {

// [[nodiscard]]: a Status or Result that is dropped is an error that nobody
// saw; say `(void)` where dropping one is meant, with a comment saying why.
class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,     // bad input from the user: spec, flags, selectors
    kNotFound,            // a named thing does not exist
    kCorruption,          // stored data does not match its checksum
    kIOError,             // the OS refused a file or socket operation
    kFailedPrecondition,  // the world is not in a state where this can run
    kUnavailable,         // a server or service did not answer
    kAborted,             // refused or interrupted: lock held, confirmation missing
    kDataLoss,            // an action would discard data beyond the allowed limit
    kTimeout,             // a deadline passed
    kInternal,            // a bug in Backstop
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status FailedPrecondition(std::string msg) {
    return {Code::kFailedPrecondition, std::move(msg)};
  }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status Aborted(std::string msg) { return {Code::kAborted, std::move(msg)}; }
  static Status DataLoss(std::string msg) { return {Code::kDataLoss, std::move(msg)}; }
  static Status Timeout(std::string msg) { return {Code::kTimeout, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }
  // An IOError built from errno: "<what>: <strerror(err)>".
  static Status FromErrno(const std::string& what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }

  // "<code name>: <message>", or "OK".
  std::string ToString() const;
  static const char* CodeName(Code code);

  // Returns a copy whose message is prefixed with `context` ("context: message").
  Status WithContext(const std::string& context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

// Result<T> holds a T or a non-OK Status.
// A Result built from an OK status holds neither a value nor an error: it
// becomes an Internal error in every build type, so the bug is reported
// where it is seen instead of read as success.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status)                      // NOLINT: implicit by design
      : v_(status.ok() ? Status::Internal("a Result was built from an OK status")
                       : std::move(status)) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace backstop

// Returns early from the enclosing function when `expr` is not OK.
#define BACKSTOP_RETURN_IF_ERROR(expr) \
  do {                                 \
    ::backstop::Status _st = (expr);   \
    if (!_st.ok()) return _st;         \
  } while (0)

#define BACKSTOP_CONCAT_INNER(a, b) a##b
#define BACKSTOP_CONCAT(a, b) BACKSTOP_CONCAT_INNER(a, b)
// Declares `lhs` from a Result, returning its Status early on error.
#define BACKSTOP_ASSIGN_OR_RETURN(lhs, expr) \
  BACKSTOP_ASSIGN_OR_RETURN_IMPL(BACKSTOP_CONCAT(_res_, __LINE__), lhs, expr)
#define BACKSTOP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
