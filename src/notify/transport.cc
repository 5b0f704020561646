#include "notify/transport.h"

#include <curl/curl.h>

#include <memory>

namespace backstop {
namespace {

size_t DiscardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

Status CurlTransport::Post(const HttpPost& post) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return Status::IOError("cannot set up an HTTP request (libcurl)");
  curl_slist* raw = curl_slist_append(nullptr, "Content-Type: application/json");
  raw = curl_slist_append(raw, "User-Agent: backstop");
  raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
  for (const auto& [name, value] : post.headers) {
    raw = curl_slist_append(raw, (name + ": " + value).c_str());
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, post.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, post.body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post.body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(post.connect_timeout_ms));
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(post.total_timeout_ms));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, DiscardBody);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    // curl_easy_strerror names the failure, never the URL.
    return Status::Unavailable(std::string(curl_easy_strerror(rc)));
  }
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code > 299) return Status::Unavailable("HTTP " + std::to_string(code));
  return Status::OK();
}

Status CurlTransport::RunCommand(const std::vector<std::string>& argv,
                                 const std::string& stdin_data, int64_t timeout_ms) {
  ProcessOptions options;
  options.argv = argv;
  options.stdin_data = stdin_data;
  options.timeout_ms = timeout_ms;
  BACKSTOP_ASSIGN_OR_RETURN(ProcessResult result, env_->processes()->Run(options));
  if (result.success()) return Status::OK();
  if (result.timed_out) {
    return Status::Unavailable("timed out after " + std::to_string(timeout_ms / 1000) + " s");
  }
  return Status::Unavailable(result.Describe());
}

}  // namespace backstop
