// SHA-256 via OpenSSL, one-shot and streaming. Digests are written as
// lowercase hex; manifests prefix them with "sha256:".
//
// Thread-safety: a Sha256 object is not thread-safe; separate objects are.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  // Returns the lowercase hex digest. REQUIRES: called once.
  std::string FinishHex();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string Sha256Hex(std::string_view data);
// Hashes a file by streaming it through `fs` (no full read into memory).
// Never through a symbolic link: FailedPrecondition when `path` is one
// (callers hash what they found to be a regular file; a link there now is a
// substitution).
Result<std::string> Sha256File(FileSystem* fs, const std::string& path);
// The same through the real file system (Env::Default()).
Result<std::string> Sha256File(const std::string& path);
// True if `s` is 64 lowercase hex digits.
bool IsSha256Hex(std::string_view s);

}  // namespace backstop
