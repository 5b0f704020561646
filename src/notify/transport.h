// How a notification leaves the process: an HTTP POST (webhook, slack) or a
// command with the payload on stdin. An interface, so that the deliverer is
// tested without a network; CurlTransport is the real one.
//
// Errors never carry the URL (it may hold a token) or the body.
// Thread-safety: CurlTransport may be used from one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

struct HttpPost {
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int64_t connect_timeout_ms = 5'000;
  int64_t total_timeout_ms = 10'000;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // OK on a 2xx answer; else an error saying what happened ("HTTP 500",
  // "connection refused", "timed out after 10 s").
  virtual Status Post(const HttpPost& post) = 0;
  // OK when `argv` exits 0 within `timeout_ms` with `stdin_data` on stdin.
  virtual Status RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
                            int64_t timeout_ms) = 0;
};

// libcurl for HTTP (no signals, no redirects followed), the Env's process
// runner for commands.
class CurlTransport : public Transport {
 public:
  explicit CurlTransport(Env* env) : env_(env) {}
  Status Post(const HttpPost& post) override;
  Status RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
                    int64_t timeout_ms) override;

 private:
  Env* env_;
};

}  // namespace backstop
