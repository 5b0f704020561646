// A real S3-compatible server for integration tests (s3rver, from npm), and
// the fault proxy that stands between a client and it
// (tests/tools/s3-fault-proxy.mjs).
//
// S3rver::Start runs `node --openssl-legacy-provider <s3rver> -d <dir>/data -a 127.0.0.1 -p <port>
// --configure-bucket <bucket>` in a temporary directory on a free loopback
// port (the legacy provider: s3rver's continuation tokens use DES), waits
// until it answers HTTP and stops it (SIGTERM, then SIGKILL) in
// its destructor. The child gets PR_SET_PDEATHSIG so a crashed test does not
// leave a server behind. Stop() and Restart() keep the port and the data, so
// a test can take the server away and bring it back with its objects.
//
// s3rver is $BACKSTOP_S3RVER, else <source dir>/tests/servers/node_modules/
// .bin/s3rver (pinned by tests/servers/package-lock.json). When it is not
// there, Start fails (FailedPrecondition) saying to run
// `scripts/install-deps --test`: tests that need it fail, never skip.
//
// s3rver accepts the fixed access key S3RVER (secret S3RVER) and refuses an
// unknown key id with 403 InvalidAccessKeyId; it does not check Signature V4
// signatures or payload hashes (it requires the x-amz-content-sha256 header).
//
// Thread-safety: neither class is thread-safe. Test-only code.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/status.h"

namespace backstop::testing {

class S3rver {
 public:
  // `source_dir`: the checkout (tests get it as the macro BACKSTOP_SOURCE_DIR).
  static Result<std::unique_ptr<S3rver>> Start(const std::string& bucket,
                                               const std::string& source_dir);
  ~S3rver();
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  // SIGTERM and wait (SIGKILL after 5 s). A stopped server is OK.
  Status Stop();
  // Starts again on the same port with the same data.
  Status Restart();
  bool running() const { return pid_ > 0; }

  std::string endpoint() const;  // http://127.0.0.1:<port>
  int port() const { return port_; }
  const std::string& bucket() const { return bucket_; }
  static constexpr const char* kAccessKeyId = "S3RVER";
  static constexpr const char* kSecretAccessKey = "S3RVER";
  // The server's output, for failure messages.
  std::string LogTail() const;

 private:
  S3rver() = default;
  Status Launch();
  std::string script_;
  std::string bucket_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// tests/tools/s3-fault-proxy.mjs in front of `upstream` (an S3rver's
// endpoint): faults are set with SetMode ("pass", "fail500 2",
// "drop-mid-upload", "stall"), which POSTs /__fault/<mode> to the proxy.
// With a `sigv4_secret`, the proxy also checks each request's Signature V4
// and payload hash with it (s3rver checks neither), answering 403
// SignatureDoesNotMatch or 400 XAmzContentSHA256Mismatch as S3 would.
class S3FaultProxy {
 public:
  static Result<std::unique_ptr<S3FaultProxy>> Start(const std::string& upstream,
                                                     const std::string& source_dir,
                                                     const std::string& sigv4_secret = "");
  ~S3FaultProxy();
  S3FaultProxy(const S3FaultProxy&) = delete;
  S3FaultProxy& operator=(const S3FaultProxy&) = delete;

  Status SetMode(const std::string& mode);
  // How many requests the proxy has seen (GET /__fault/count).
  Result<int> RequestCount();
  std::string endpoint() const;  // http://127.0.0.1:<port>
  std::string LogTail() const;

 private:
  S3FaultProxy() = default;
  std::string log_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace backstop::testing
