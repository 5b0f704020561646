// S3ObjectStore: the ObjectStore (object_store.h) of an S3-compatible bucket,
// over libcurl with its own AWS Signature Version 4 (CURLOPT_AWS_SIGV4).
//
// Addressing is always path-style: an object's URL is
// <endpoint>/<bucket>/<prefix>/<key>. Virtual-hosted style
// (<bucket>.<endpoint>) would need DNS for every bucket name, which local
// servers (MinIO, s3rver, Ceph on a LAN) do not have; AWS still answers
// path-style requests.
//
// Every request carries `x-amz-content-sha256: <hex sha256 of the body>`,
// computed before it is sent (a file is read once for it, then streamed):
// AWS requires the header and some servers refuse a request without it.
// libcurl 7.88 signs the header's value as the payload hash as it is given
// (it neither computes nor checks it), and signs the URL's query as it is
// written (it does not sort it): so every query here is built sorted by
// name, each value percent-encoded, an empty one written "name=".
//
// Errors follow the ObjectStore contract: NotFound for a missing key;
// Unavailable once connection errors, timeouts, 5xx and 429 answers outlived
// S3Options::max_attempts (exponential backoff with jitter between them);
// FailedPrecondition for 403 (the credentials) and for a missing bucket.
// No message ever holds the secret key or the session token.
//
// Multipart: a file above S3Options::multipart_threshold is uploaded in parts
// of part_size bytes (S3 wants every part but the last to be at least 5 MiB),
// each part retried alone; a failed upload is aborted so that no parts are
// left behind to be billed. S3 makes the object appear only when the upload
// is completed, whole.
//
// Ownership: S3ObjectStore owns its libcurl handles.
// Thread-safety: S3ObjectStore is safe to call from several threads (each
// request takes a handle of its own from a small pool); the free functions
// are safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/env.h"
#include "base/mutex.h"
#include "base/status.h"
#include "store/remote/object_store.h"

namespace backstop {

// Where a store's objects are.
struct S3Location {
  std::string bucket;
  std::string prefix;    // without leading or trailing '/'; may be empty
  std::string endpoint;  // "http://127.0.0.1:9000", "https://s3.eu-west-1.amazonaws.com"
  std::string region = "us-east-1";

  // "s3://bucket/prefix (endpoint)", for messages.
  std::string Describe() const;
};

// Parses "s3://bucket" or "s3://bucket/some/prefix" (a trailing '/' is
// dropped). `endpoint` empty: AWS's "https://s3.<region>.amazonaws.com";
// `region` empty: "us-east-1". InvalidArgument, naming the URL, for a
// missing bucket, a bucket name S3 does not allow (3-63 of a-z 0-9 . -,
// starting and ending with a letter or digit), a prefix with characters
// other than A-Z a-z 0-9 . _ - / or an endpoint that is not http(s)://.
Result<S3Location> ParseS3Url(const std::string& url, const std::string& endpoint = "",
                              const std::string& region = "");

struct S3Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

// The credentials as the AWS tools find them: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) from `environment`, else the
// profile AWS_PROFILE (or "default") of the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, or $HOME/.aws/credentials; INI format),
// read through `fs`. FailedPrecondition naming both places when neither has
// them. Messages name variables, files and profiles, never a value.
Result<S3Credentials> LoadS3Credentials(const std::map<std::string, std::string>& environment,
                                        FileSystem* fs);
// The same with this process's environment and the real file system.
Result<S3Credentials> LoadS3Credentials();

struct S3Options {
  // Files larger than this are uploaded in parts of part_size bytes.
  uint64_t multipart_threshold = 64ull << 20;
  uint64_t part_size = 16ull << 20;
  // Attempts of one request (a part counts as one request) before Unavailable.
  int max_attempts = 5;
  // The delay before the second attempt; it doubles after each failure, up
  // to max_backoff_ms, and is drawn from [1/2, 1] of that (jitter).
  int64_t first_backoff_ms = 200;
  int64_t max_backoff_ms = 20'000;
  // Connecting may take this long, and a transfer that moves no byte for
  // this long is given up (a transfer as such may take as long as it needs).
  int64_t timeout_s = 30;
  // ListObjectsV2's max-keys; 0: the server's default (1000 on AWS). Tests
  // set a small one to see several pages.
  int list_page_size = 0;
};

class S3ObjectStore : public ObjectStore {
 public:
  // Checks the location, the credentials and the options; sends nothing.
  static Result<std::unique_ptr<S3ObjectStore>> Open(S3Location location, S3Credentials credentials,
                                                     S3Options options = S3Options());
  ~S3ObjectStore() override;
  S3ObjectStore(const S3ObjectStore&) = delete;
  S3ObjectStore& operator=(const S3ObjectStore&) = delete;

  std::string Describe() const override;
  Status Put(const std::string& key, std::string_view data) override;
  Status PutFile(const std::string& key, const std::string& path) override;
  Result<std::string> Get(const std::string& key) override;
  Status GetToFile(const std::string& key, const std::string& path) override;
  Result<uint64_t> Size(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Delete(const std::string& key) override;

  const S3Location& location() const { return location_; }

 private:
  struct Request;
  struct Response;
  S3ObjectStore(S3Location location, S3Credentials credentials, S3Options options);

  // One attempt of `request`. Transport failures come back as a Response
  // with `curl_error` set; only local failures (a file) are a Status.
  Result<Response> PerformOnce(const Request& request);
  // Attempts `request` until it gets an answer that is not transient, or
  // max_attempts ran out (Unavailable). The answer may still be an error:
  // see HttpError.
  Result<Response> Perform(const Request& request);
  // The Status of a non-2xx answer to `request`.
  Status HttpError(const Request& request, const Response& response);
  // FailedPrecondition when the bucket does not exist (after a HEAD's
  // bodiless 404), else `not_found`.
  Status NotFoundOrNoBucket(Status not_found);
  Status PutMultipart(const std::string& key, const std::string& path, int fd, uint64_t size);

  std::string ObjectPath(const std::string& key) const;  // "/bucket/prefix/key", encoded
  std::string Where(const std::string& what, const std::string& key) const;

  void* AcquireHandle();
  void ReleaseHandle(void* handle);

  const S3Location location_;
  const S3Credentials credentials_;
  const S3Options options_;
  Mutex mu_;
  std::vector<void*> idle_handles_ GUARDED_BY(mu_);  // CURL*, reset, ready for a request
};

}  // namespace backstop
