// The Docker Engine API client over a unix socket. See docker_client.h.
#include "drivers/container/docker_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <utility>

namespace backstop::container {

using nlohmann::json;

namespace {

constexpr const char* kApiPrefix = "http://localhost/v1.41";

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// Percent-encodes `s`; `keep` lists the reserved characters left as they
// are ("/:@" for an image reference inside a path, whose router takes the
// rest of the path as the name; none for a query value).
std::string Escape(const std::string& s, std::string_view keep) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : s) {
    bool unreserved = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~';
    if (unreserved || keep.find(static_cast<char>(ch)) != std::string_view::npos) {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

std::string PathPart(const std::string& s) { return Escape(s, "/:@"); }
std::string QueryValue(const std::string& s) { return Escape(s, ""); }

bool IsSuccess(long http_status) { return http_status >= 200 && http_status < 300; }

// A container's log stream without its framing: without a TTY the engine
// sends frames of an 8-byte header (stream 0-2, three zero bytes, a
// big-endian length) and the bytes; with one, the bytes as they are.
std::string Unframe(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos + 8 <= raw.size()) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(raw[pos + i]); };
    if (byte(0) > 2 || byte(1) != 0 || byte(2) != 0 || byte(3) != 0) break;
    size_t length = (size_t{byte(4)} << 24) | (size_t{byte(5)} << 16) | (size_t{byte(6)} << 8) |
                    size_t{byte(7)};
    out.append(raw, pos + 8, length);
    pos += 8 + length;
  }
  if (pos == 0) return raw;  // a TTY's stream: no frames
  return out;
}

}  // namespace

// One request: where its body comes from and where its answer goes.
struct DockerClient::Request {
  std::string method = "GET";
  std::string path;  // after the version prefix, e.g. "/containers/web/json"
  std::string what;  // for errors: "inspect container web"
  const json* body = nullptr;
  SequentialFile* upload = nullptr;  // streamed as the body (chunked)
  WritableFile* download = nullptr;  // a 2xx body goes here instead of Response::body
  uint64_t* downloaded = nullptr;    // bytes written to `download`
  int64_t extra_timeout_ms = 0;      // on top of request_timeout_ms (stop's grace period)
};

namespace {

// The state the libcurl callbacks share during one transfer.
struct Transfer {
  CURL* curl = nullptr;
  std::string body;
  WritableFile* download = nullptr;
  uint64_t downloaded = 0;
  SequentialFile* upload = nullptr;
  Status sink_error;  // what made a callback stop the transfer
};

size_t OnWrite(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  // An error answer is a JSON message, never image content: keep it for the Status.
  if (t->download == nullptr || !IsSuccess(code)) {
    t->body.append(data, n);
    return n;
  }
  Status st = t->download->Append(std::string_view(data, n));
  if (!st.ok()) {
    t->sink_error = std::move(st);
    return 0;  // aborts the transfer
  }
  t->downloaded += n;
  return n;
}

size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  auto got = t->upload->Read(size * count, buffer);
  if (!got.ok()) {
    t->sink_error = got.status();
    return CURL_READFUNC_ABORT;
  }
  if (!got->empty() && got->data() != buffer) std::memmove(buffer, got->data(), got->size());
  return got->size();
}

}  // namespace

DockerClient::DockerClient(DockerClientOptions options) : options_(std::move(options)) {}

Result<DockerClient::Response> DockerClient::Perform(const Request& request) const {
  std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
  if (!handle) return Status::IOError("cannot set up an HTTP request (libcurl)");
  CURL* c = handle.get();
  Transfer transfer;
  transfer.curl = c;
  transfer.download = request.download;
  transfer.upload = request.upload;

  std::string url = kApiPrefix + request.path;
  std::string payload;
  curl_slist* raw = curl_slist_append(nullptr, "User-Agent: backstop");
  raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
  if (request.body != nullptr) {
    payload = request.body->dump();
    raw = curl_slist_append(raw, "Content-Type: application/json");
  } else if (request.upload != nullptr) {
    raw = curl_slist_append(raw, "Content-Type: application/x-tar");
    raw = curl_slist_append(raw, "Transfer-Encoding: chunked");
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw);

  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, options_.socket_path.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
  if (request.upload != nullptr || request.download != nullptr) {
    // A large image may rightly take minutes: fail on a stall instead.
    long stall_s = static_cast<long>(std::max<int64_t>(1, options_.stall_timeout_ms / 1000));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s);
  } else {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(options_.request_timeout_ms + request.extra_timeout_ms));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  if (request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    if (request.upload != nullptr) {
      curl_easy_setopt(c, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(c, CURLOPT_READDATA, &transfer);
    } else {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  if (request.downloaded != nullptr) *request.downloaded = transfer.downloaded;
  if (!transfer.sink_error.ok()) return transfer.sink_error.WithContext(request.what);
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status::Timeout(request.what + ": the container engine at " + options_.socket_path +
                           " did not answer in time (" + curl_easy_strerror(rc) + ")");
  }
  if (rc == CURLE_COULDNT_CONNECT) {
    return Status::Unavailable(request.what + ": cannot reach the container engine at " +
                               options_.socket_path +
                               " (is the Docker or podman service running?)");
  }
  if (rc != CURLE_OK) {
    return Status::Unavailable(request.what + ": request to the container engine at " +
                               options_.socket_path + " failed: " + curl_easy_strerror(rc));
  }
  Response response;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.http_status);
  response.body = std::move(transfer.body);
  return response;
}

Status DockerClient::HttpError(const std::string& what, const Response& response) {
  std::string message;
  json parsed = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    message = parsed["message"].get<std::string>();
  } else {
    message = response.body.substr(0, 300);
  }
  std::string text = what + ": " + message + " (HTTP " + std::to_string(response.http_status) + ")";
  long code = response.http_status;
  if (code == 404) return Status::NotFound(text);
  if (code == 409) return Status::FailedPrecondition(text);
  if (code >= 500) return Status::Unavailable(text);
  return Status::InvalidArgument(text);
}

Result<json> DockerClient::Version() const {
  Request r;
  r.path = "/version";
  r.what = "container engine version";
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  json parsed = json::parse(resp.body, nullptr, false);
  if (parsed.is_discarded()) return Status::Corruption(r.what + ": the answer is not JSON");
  return parsed;
}

Result<json> DockerClient::InspectContainer(const std::string& name_or_id) const {
  Request r;
  r.path = "/containers/" + PathPart(name_or_id) + "/json";
  r.what = "inspect container " + name_or_id;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  json parsed = json::parse(resp.body, nullptr, false);
  if (!parsed.is_object()) return Status::Corruption(r.what + ": the answer is not a JSON object");
  return parsed;
}

Result<json> DockerClient::InspectImage(const std::string& ref) const {
  Request r;
  r.path = "/images/" + PathPart(ref) + "/json";
  r.what = "inspect image " + ref;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  json parsed = json::parse(resp.body, nullptr, false);
  if (!parsed.is_object()) return Status::Corruption(r.what + ": the answer is not a JSON object");
  return parsed;
}

Result<std::string> DockerClient::CreateContainer(const std::string& name,
                                                  const json& config) const {
  Request r;
  r.method = "POST";
  r.path = "/containers/create?name=" + QueryValue(name);
  r.what = "create container " + name;
  r.body = &config;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) {
    Status error = HttpError(r.what, resp);
    // Docker answers a taken name with 409; podman 4 with 500 and this message.
    if (error.message().find("is already in use") != std::string::npos) {
      return Status::FailedPrecondition(error.message());
    }
    return error;
  }
  json parsed = json::parse(resp.body, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("Id") || !parsed["Id"].is_string()) {
    return Status::Corruption(r.what +
                              ": the answer names no container id: " + resp.body.substr(0, 300));
  }
  return parsed["Id"].get<std::string>();
}

Status DockerClient::StartContainer(const std::string& name_or_id) const {
  Request r;
  r.method = "POST";
  r.path = "/containers/" + PathPart(name_or_id) + "/start";
  r.what = "start container " + name_or_id;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (resp.http_status == 304 || IsSuccess(resp.http_status)) return Status::OK();
  return HttpError(r.what, resp);
}

Status DockerClient::StopContainer(const std::string& name_or_id, int grace_seconds) const {
  Request r;
  r.method = "POST";
  r.path = "/containers/" + PathPart(name_or_id) + "/stop?t=" + std::to_string(grace_seconds);
  r.what = "stop container " + name_or_id;
  r.extra_timeout_ms = static_cast<int64_t>(grace_seconds) * 1000;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (resp.http_status == 304 || IsSuccess(resp.http_status)) return Status::OK();
  return HttpError(r.what, resp);
}

Status DockerClient::RemoveContainer(const std::string& name_or_id, bool force) const {
  Request r;
  r.method = "DELETE";
  r.path = "/containers/" + PathPart(name_or_id) + "?force=" + (force ? "1" : "0");
  r.what = "remove container " + name_or_id;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (resp.http_status == 404 || IsSuccess(resp.http_status)) return Status::OK();
  return HttpError(r.what, resp);
}

Result<json> DockerClient::ListImages() const {
  Request r;
  r.path = "/images/json";
  r.what = "list images";
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  json parsed = json::parse(resp.body, nullptr, false);
  if (!parsed.is_array()) return Status::Corruption(r.what + ": the answer is not a JSON array");
  return parsed;
}

Status DockerClient::RenameContainer(const std::string& name_or_id,
                                     const std::string& new_name) const {
  Request r;
  r.method = "POST";
  r.path = "/containers/" + PathPart(name_or_id) + "/rename?name=" + QueryValue(new_name);
  r.what = "rename container " + name_or_id + " to " + new_name;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (IsSuccess(resp.http_status)) return Status::OK();
  Status error = HttpError(r.what, resp);
  if (error.message().find("already in use") != std::string::npos) {
    return Status::FailedPrecondition(error.message());
  }
  return error;
}

Result<std::string> DockerClient::ContainerLogs(const std::string& name_or_id, int tail) const {
  Request r;
  r.path = "/containers/" + PathPart(name_or_id) +
           "/logs?stdout=1&stderr=1&tail=" + std::to_string(tail);
  r.what = "logs of container " + name_or_id;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  return Unframe(resp.body);
}

Result<uint64_t> DockerClient::ExportImage(const std::string& ref, WritableFile* out) const {
  Request r;
  r.path = "/images/" + PathPart(ref) + "/get";
  r.what = "export image " + ref;
  r.download = out;
  uint64_t written = 0;
  r.downloaded = &written;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  return written;
}

Result<std::string> DockerClient::LoadImage(SequentialFile* in) const {
  Request r;
  r.method = "POST";
  r.path = "/images/load?quiet=1";
  r.what = "load image";
  r.upload = in;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  return resp.body;
}

Status DockerClient::RemoveImage(const std::string& ref, bool force) const {
  Request r;
  r.method = "DELETE";
  r.path = "/images/" + PathPart(ref) + "?force=" + (force ? "1" : "0");
  r.what = "remove image " + ref;
  BACKSTOP_ASSIGN_OR_RETURN(Response resp, Perform(r));
  if (!IsSuccess(resp.http_status)) return HttpError(r.what, resp);
  return Status::OK();
}

}  // namespace backstop::container
