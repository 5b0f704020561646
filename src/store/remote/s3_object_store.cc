// The S3 ObjectStore over libcurl. See s3_object_store.h.
#include "store/remote/s3_object_store.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "base/fd.h"
#include "base/hash.h"
#include "base/strings.h"

extern char** environ;

namespace backstop {
namespace {

// Distinctive names: this file is compiled in one unity build with its
// neighbours in src/store/.

constexpr const char* kS3EmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

bool S3Unreserved(unsigned char ch) {
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

// Percent-encodes everything but SigV4's unreserved characters (and '/' when
// `keep_slash`): libcurl signs the URL as written, so it must already be in
// the canonical form S3 computes the signature over.
std::string S3Encode(std::string_view s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    if (S3Unreserved(ch) || (keep_slash && ch == '/')) {
      out.push_back(static_cast<char>(ch));
    } else {
      out.push_back('%');
      out.push_back(kHex[ch >> 4]);
      out.push_back(kHex[ch & 15]);
    }
  }
  return out;
}

// A query string in SigV4's canonical form: sorted by name (std::map),
// values encoded, "name=" for an empty value (libcurl 7.88 signs the query
// exactly as written).
std::string S3Query(const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out.push_back('&');
    out += S3Encode(name, false) + "=" + S3Encode(value, false);
  }
  return out;
}

std::string XmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back(s[i++]);
      continue;
    }
    std::string_view entity = s.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string digits(entity.substr(hex ? 2 : 1));
      char* end = nullptr;
      unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (digits.empty() || *end != '\0' || cp > 0x10FFFF) {
        out.append(s.substr(i, semi - i + 1));
      } else if (cp < 0x80) {  // UTF-8
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.append(s.substr(i, semi - i + 1));  // unknown: kept as it is
    }
    i = semi + 1;
  }
  return out;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// The text of each <tag>…</tag> in `xml` from `from` on, in order. S3's
// answers are flat enough for this: the elements read here hold no markup,
// only escaped text.
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag,
                                          size_t from = 0) {
  std::vector<std::string_view> out;
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t pos = from;
  while (true) {
    size_t start = xml.find(open, pos);
    if (start == std::string_view::npos) break;
    start += open.size();
    size_t end = xml.find(close, start);
    if (end == std::string_view::npos) break;
    out.push_back(xml.substr(start, end - start));
    pos = end + close.size();
  }
  return out;
}

std::string XmlFirst(std::string_view xml, std::string_view tag) {
  auto all = XmlElements(xml, tag);
  return all.empty() ? std::string() : XmlUnescape(all.front());
}

bool ValidBucketName(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  return alnum(b.front()) && alnum(b.back()) && b.find("..") == std::string_view::npos;
}

std::string S3Getenv(const std::map<std::string, std::string>& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() ? std::string() : it->second;
}

std::map<std::string, std::string> S3ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

// The profile `profile` of an INI credentials file: "[name]" sections,
// "key = value" lines, '#' and ';' comments. "[profile name]" (the config
// file's spelling) is accepted too.
std::map<std::string, std::string> S3IniProfile(std::string_view text, const std::string& profile,
                                                bool* found) {
  std::map<std::string, std::string> values;
  *found = false;
  bool in_profile = false;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string line = Trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      std::string name = Trim(std::string_view(line).substr(1, line.size() - 2));
      if (name.rfind("profile ", 0) == 0) name = Trim(std::string_view(name).substr(8));
      in_profile = name == profile;
      if (in_profile) *found = true;
      continue;
    }
    if (!in_profile) continue;
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = Trim(std::string_view(line).substr(0, eq));
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    values[key] = Trim(std::string_view(line).substr(eq + 1));
  }
  return values;
}

void S3CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The delay before attempt `failed + 1`: first * 2^(failed - 1), capped,
// times a random factor in [0.5, 1] so that clients that failed together do
// not come back together.
int64_t S3BackoffMs(const S3Options& o, int failed) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  double ms = static_cast<double>(std::max<int64_t>(0, o.first_backoff_ms));
  for (int i = 1; i < failed && ms < static_cast<double>(o.max_backoff_ms); ++i) ms *= 2;
  ms = std::min(ms, static_cast<double>(o.max_backoff_ms));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return static_cast<int64_t>(ms * jitter(rng));
}

std::string S3RandomHex() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  uint64_t v = rng();
  std::string out;
  for (int i = 0; i < 12; ++i) out.push_back(kHex[(v >> (4 * i)) & 15]);
  return out;
}

// Hashes `length` bytes of `fd` from `offset` (pread: the descriptor's
// position is left alone).
Result<std::string> S3HashRange(int fd, uint64_t offset, uint64_t length, const std::string& path) {
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  uint64_t done = 0;
  while (done < length) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read " + path, errno);
    }
    if (n == 0) return Status::IOError("read " + path + ": the file shrank while it was read");
    sha.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    done += static_cast<uint64_t>(n);
  }
  return sha.FinishHex();
}

}  // namespace

// ---- Location and credentials ----------------------------------------------

std::string S3Location::Describe() const {
  std::string out = "s3://" + bucket;
  if (!prefix.empty()) out += "/" + prefix;
  return out + " (" + endpoint + ")";
}

Result<S3Location> ParseS3Url(const std::string& url, const std::string& endpoint,
                              const std::string& region) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("S3 URL \"" + url + "\" " + why);
  };
  constexpr std::string_view kScheme = "s3://";
  if (url.rfind(kScheme, 0) != 0) return bad("does not start with s3://");
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  size_t slash = rest.find('/');
  S3Location loc;
  loc.bucket = std::string(rest.substr(0, slash));
  if (loc.bucket.empty()) return bad("names no bucket (s3://bucket/optional/prefix)");
  if (!ValidBucketName(loc.bucket)) {
    return bad("has a bucket name S3 does not allow: \"" + loc.bucket +
               "\" (3 to 63 of a-z 0-9 . -, starting and ending with a letter or digit)");
  }
  if (slash != std::string_view::npos) {
    std::string_view prefix = rest.substr(slash + 1);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (!prefix.empty()) {
      Status st = CheckObjectKey(prefix);
      if (!st.ok()) {
        return bad("has a prefix \"" + std::string(prefix) +
                   "\" that is not a '/'-separated path of A-Z a-z 0-9 . _ - (no \"..\", no "
                   "\"//\")");
      }
    }
    loc.prefix = std::string(prefix);
  }
  loc.region = region.empty() ? "us-east-1" : region;
  for (char c : loc.region) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return Status::InvalidArgument("S3 region \"" + loc.region +
                                     "\" holds a character other than a-z 0-9 -");
    }
  }
  loc.endpoint = endpoint.empty() ? "https://s3." + loc.region + ".amazonaws.com" : endpoint;
  while (!loc.endpoint.empty() && loc.endpoint.back() == '/') loc.endpoint.pop_back();
  if (loc.endpoint.rfind("http://", 0) != 0 && loc.endpoint.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("S3 endpoint \"" + endpoint +
                                   "\" does not start with http:// or https://");
  }
  return loc;
}

Result<S3Credentials> LoadS3Credentials(const std::map<std::string, std::string>& environment,
                                        FileSystem* fs) {
  S3Credentials creds;
  creds.access_key_id = S3Getenv(environment, "AWS_ACCESS_KEY_ID");
  creds.secret_access_key = S3Getenv(environment, "AWS_SECRET_ACCESS_KEY");
  if (!creds.access_key_id.empty() || !creds.secret_access_key.empty()) {
    if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
      return Status::FailedPrecondition(
          std::string(creds.access_key_id.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
          " is set but " +
          (creds.access_key_id.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") +
          " is not: set both (or neither, to use the shared credentials file)");
    }
    creds.session_token = S3Getenv(environment, "AWS_SESSION_TOKEN");
    return creds;
  }

  std::string path = S3Getenv(environment, "AWS_SHARED_CREDENTIALS_FILE");
  if (path.empty()) {
    std::string home = S3Getenv(environment, "HOME");
    if (!home.empty()) path = JoinPath(home, ".aws/credentials");
  }
  std::string profile = S3Getenv(environment, "AWS_PROFILE");
  if (profile.empty()) profile = "default";
  const std::string looked =
      "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, and ";
  if (path.empty()) {
    return Status::FailedPrecondition(
        looked +
        "there is no shared credentials file (neither AWS_SHARED_CREDENTIALS_FILE nor "
        "HOME is set)");
  }
  auto text = fs->ReadFile(path);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::FailedPrecondition(looked + "the shared credentials file " + path +
                                        " does not exist");
    }
    return Status::FailedPrecondition(
        looked + "the shared credentials file could not be read: " + text.status().message());
  }
  bool found = false;
  auto values = S3IniProfile(*text, profile, &found);
  if (!found) {
    return Status::FailedPrecondition(looked + "the shared credentials file " + path +
                                      " has no profile [" + profile + "]");
  }
  creds.access_key_id = values["aws_access_key_id"];
  creds.secret_access_key = values["aws_secret_access_key"];
  creds.session_token = values["aws_session_token"];
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return Status::FailedPrecondition(looked + "the profile [" + profile + "] of " + path +
                                      " lacks aws_access_key_id or aws_secret_access_key");
  }
  return creds;
}

Result<S3Credentials> LoadS3Credentials() {
  return LoadS3Credentials(S3ProcessEnvironment(), Env::Default()->fs());
}

// ---- Requests ----------------------------------------------------------------

// One S3 request: what it sends and where the answer goes.
struct S3ObjectStore::Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string op;              // for messages: "put", "get", "list"...
  std::string key;             // for messages; empty for bucket-level requests
  std::string path;            // "/bucket/prefix/key", encoded
  std::string query;           // canonical (S3Query)
  std::string_view body;       // PUT or POST from memory
  int body_fd = -1;            // PUT from this file instead...
  uint64_t body_offset = 0;    // ...from this offset...
  uint64_t body_length = 0;    // ...this many bytes
  std::string body_sha256 = kS3EmptySha256;
  int download_fd = -1;  // a 2xx body is written here (from offset 0) instead of Response::body
};

struct S3ObjectStore::Response {
  long http_status = 0;
  std::string body;
  std::string etag;
  int64_t content_length = -1;  // -1: not sent
  CURLcode curl_error = CURLE_OK;
  std::string curl_detail;  // libcurl's error buffer: never holds the credentials
  bool transient() const {
    return curl_error != CURLE_OK || http_status >= 500 || http_status == 429;
  }
};

namespace {

// The state the libcurl callbacks share during one attempt.
struct S3Transfer {
  CURL* curl = nullptr;
  // Upload.
  std::string_view memory;
  int fd = -1;
  uint64_t offset = 0;  // of the body in the file
  uint64_t length = 0;
  uint64_t sent = 0;
  // Download.
  int download_fd = -1;
  std::string body;
  std::string etag;
  Status local_error;  // what made a callback stop the transfer
};

size_t S3OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* t = static_cast<S3Transfer*>(user);
  size_t room = size * count;
  uint64_t left = t->length - t->sent;
  size_t n = static_cast<size_t>(std::min<uint64_t>(room, left));
  if (n == 0) return 0;
  if (t->fd < 0) {
    std::memcpy(buffer, t->memory.data() + t->sent, n);
  } else {
    ssize_t got;
    do {
      got = ::pread(t->fd, buffer, n, static_cast<off_t>(t->offset + t->sent));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
      t->local_error = got < 0 ? Status::FromErrno("read the file being uploaded", errno)
                               : Status::IOError("the file being uploaded shrank");
      return CURL_READFUNC_ABORT;
    }
    n = static_cast<size_t>(got);
  }
  t->sent += n;
  return n;
}

// libcurl rewinds an upload it must send again (a reused connection that
// turned out closed).
int S3OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<S3Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->length) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->sent = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

size_t S3OnWrite(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<S3Transfer*>(user);
  size_t n = size * count;
  long code = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
  // An error answer is XML for the Status, never object content.
  if (t->download_fd < 0 || code < 200 || code > 299) {
    t->body.append(data, n);
    return n;
  }
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::write(t->download_fd, data + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      t->local_error = Status::FromErrno("write the downloaded object", errno);
      return 0;  // aborts the transfer
    }
    done += static_cast<size_t>(w);
  }
  return n;
}

size_t S3OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<S3Transfer*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kEtag = "etag:";
  if (line.size() > kEtag.size()) {
    std::string name(line.substr(0, kEtag.size()));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (name == kEtag) t->etag = Trim(line.substr(kEtag.size()));
  }
  return n;
}

// libcurl failures that no retry can mend.
bool S3CurlErrorIsFinal(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      return true;
    default:
      return false;
  }
}

struct S3SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

S3ObjectStore::S3ObjectStore(S3Location location, S3Credentials credentials, S3Options options)
    : location_(std::move(location)),
      credentials_(std::move(credentials)),
      options_(std::move(options)) {}

S3ObjectStore::~S3ObjectStore() {
  MutexLock lock(&mu_);
  for (void* h : idle_handles_) curl_easy_cleanup(static_cast<CURL*>(h));
}

Result<std::unique_ptr<S3ObjectStore>> S3ObjectStore::Open(S3Location location,
                                                           S3Credentials credentials,
                                                           S3Options options) {
  if (!ValidBucketName(location.bucket)) {
    return Status::InvalidArgument("S3 bucket name \"" + location.bucket + "\" is not allowed");
  }
  if (location.endpoint.rfind("http://", 0) != 0 && location.endpoint.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("S3 endpoint \"" + location.endpoint +
                                   "\" does not start with http:// or https://");
  }
  if (location.region.empty()) location.region = "us-east-1";
  if (credentials.access_key_id.empty() || credentials.secret_access_key.empty()) {
    return Status::InvalidArgument("S3 credentials for " + location.Describe() +
                                   " lack the access key id or the secret key");
  }
  if (options.max_attempts < 1) options.max_attempts = 1;
  if (options.part_size < (5ull << 20)) {
    // S3 refuses parts below 5 MiB but the last; a smaller setting would
    // fail only at CompleteMultipartUpload, after every part was sent.
    return Status::InvalidArgument("S3 part_size must be at least 5 MiB (S3's smallest part)");
  }
  if (options.multipart_threshold < options.part_size)
    options.multipart_threshold = options.part_size;
  S3CurlGlobalInit();
  return std::unique_ptr<S3ObjectStore>(
      new S3ObjectStore(std::move(location), std::move(credentials), std::move(options)));
}

std::string S3ObjectStore::Describe() const { return location_.Describe(); }

std::string S3ObjectStore::ObjectPath(const std::string& key) const {
  std::string full = location_.prefix.empty() ? key : location_.prefix + "/" + key;
  return "/" + S3Encode(location_.bucket, false) + "/" + S3Encode(full, true);
}

std::string S3ObjectStore::Where(const std::string& what, const std::string& key) const {
  std::string out = what;
  if (!key.empty()) out += " " + key;
  return out + " at " + location_.Describe();
}

void* S3ObjectStore::AcquireHandle() {
  {
    MutexLock lock(&mu_);
    if (!idle_handles_.empty()) {
      void* h = idle_handles_.back();
      idle_handles_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void S3ObjectStore::ReleaseHandle(void* handle) {
  if (handle == nullptr) return;
  curl_easy_reset(static_cast<CURL*>(handle));  // keeps its open connections
  MutexLock lock(&mu_);
  // A handful is enough for the threads that use a store at once.
  if (idle_handles_.size() < 8) {
    idle_handles_.push_back(handle);
    return;
  }
  curl_easy_cleanup(static_cast<CURL*>(handle));
}

Result<S3ObjectStore::Response> S3ObjectStore::PerformOnce(const Request& request) {
  CURL* c = static_cast<CURL*>(AcquireHandle());
  if (c == nullptr) return Status::IOError("cannot set up an HTTP request (libcurl)");
  struct Releaser {
    S3ObjectStore* store;
    CURL* c;
    ~Releaser() { store->ReleaseHandle(c); }
  } releaser{this, c};

  if (request.download_fd >= 0) {
    // A retried download starts over.
    if (::ftruncate(request.download_fd, 0) != 0 ||
        ::lseek(request.download_fd, 0, SEEK_SET) != 0) {
      return Status::FromErrno("truncate the download file", errno);
    }
  }
  S3Transfer t;
  t.curl = c;
  t.memory = request.body;
  t.fd = request.body_fd;
  t.offset = request.body_offset;
  t.length = request.body_fd >= 0 ? request.body_length : request.body.size();
  t.download_fd = request.download_fd;

  std::string url = location_.endpoint + request.path;
  if (!request.query.empty()) url += "?" + request.query;
  std::string sigv4 = "aws:amz:" + location_.region + ":s3";
  curl_slist* raw = curl_slist_append(nullptr, "User-Agent: backstop");
  raw = curl_slist_append(raw, "Expect:");  // no 100-continue round trip
  raw = curl_slist_append(raw, ("x-amz-content-sha256: " + request.body_sha256).c_str());
  if (!credentials_.session_token.empty()) {
    raw = curl_slist_append(raw, ("x-amz-security-token: " + credentials_.session_token).c_str());
  }
  if (request.method == "POST") raw = curl_slist_append(raw, "Content-Type: application/xml");
  std::unique_ptr<curl_slist, S3SlistDeleter> headers(raw);
  char error_buffer[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(c, CURLOPT_USERNAME, credentials_.access_key_id.c_str());
  curl_easy_setopt(c, CURLOPT_PASSWORD, credentials_.secret_access_key.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  long timeout_s = static_cast<long>(std::max<int64_t>(1, options_.timeout_s));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_s);
  // A large object may rightly take long: give up on a stall instead.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout_s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, S3OnWrite);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, S3OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t.length));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, S3OnRead);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, S3OnSeek);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &t);
    // CURLOPT_UPLOAD means PUT; a POST keeps the same streamed body.
    if (request.method == "POST") curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  if (!t.local_error.ok()) return t.local_error.WithContext(Where(request.op, request.key));
  Response response;
  response.curl_error = rc;
  if (rc != CURLE_OK) {
    response.curl_detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    return response;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.http_status);
  curl_off_t length = -1;
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK) {
    response.content_length = length;
  }
  response.body = std::move(t.body);
  response.etag = std::move(t.etag);
  return response;
}

Result<S3ObjectStore::Response> S3ObjectStore::Perform(const Request& request) {
  std::string last;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(Response response, PerformOnce(request));
    if (S3CurlErrorIsFinal(response.curl_error)) {
      // Trying again cannot help: the endpoint's certificate or its URL is wrong.
      return Status::FailedPrecondition(Where(request.op, request.key) + ": " +
                                        response.curl_detail);
    }
    if (!response.transient()) return response;
    if (response.curl_error != CURLE_OK) {
      last = response.curl_detail;
    } else {
      std::string code = XmlFirst(response.body, "Code");
      last = "HTTP " + std::to_string(response.http_status) + (code.empty() ? "" : " " + code);
    }
    if (attempt < options_.max_attempts) {
      std::this_thread::sleep_for(std::chrono::milliseconds(S3BackoffMs(options_, attempt)));
    }
  }
  return Status::Unavailable(Where(request.op, request.key) + ": no answer after " +
                             std::to_string(options_.max_attempts) +
                             " attempts; the last: " + last);
}

Status S3ObjectStore::HttpError(const Request& request, const Response& response) {
  std::string code = XmlFirst(response.body, "Code");
  std::string message = XmlFirst(response.body, "Message");
  std::string detail = "HTTP " + std::to_string(response.http_status);
  if (!code.empty()) detail += " " + code;
  if (!message.empty()) detail += ": " + message;
  if (code == "NoSuchBucket") {
    return Status::FailedPrecondition("bucket \"" + location_.bucket + "\" does not exist at " +
                                      location_.endpoint + " (" + request.op + ")");
  }
  if (response.http_status == 403) {
    return Status::FailedPrecondition("access denied to " + location_.Describe() + " (" +
                                      request.op + (request.key.empty() ? "" : " " + request.key) +
                                      ": " + detail + "): check the credentials");
  }
  if (response.http_status == 404)
    return Status::NotFound(Where(request.op, request.key) + ": " + detail);
  return Status::FailedPrecondition(Where(request.op, request.key) + ": " + detail);
}

Status S3ObjectStore::NotFoundOrNoBucket(Status not_found) {
  Request r;
  r.method = "HEAD";
  r.op = "check the bucket";
  r.path = "/" + S3Encode(location_.bucket, false);
  auto response = Perform(r);
  if (response.ok() && response->http_status == 404) {
    return Status::FailedPrecondition("bucket \"" + location_.bucket + "\" does not exist at " +
                                      location_.endpoint);
  }
  return not_found;
}

// ---- Operations ----------------------------------------------------------------

Status S3ObjectStore::Put(const std::string& key, std::string_view data) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  Request r;
  r.method = "PUT";
  r.op = "put";
  r.key = key;
  r.path = ObjectPath(key);
  r.body = data;
  r.body_sha256 = Sha256Hex(data);
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
  return Status::OK();
}

Status S3ObjectStore::PutFile(const std::string& key, const std::string& path) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Status::NotFound("upload " + path + ": no such file");
    return Status::FromErrno("open " + path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat " + path, errno);
  if (!S_ISREG(st.st_mode))
    return Status::InvalidArgument("upload " + path + ": not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > options_.multipart_threshold) return PutMultipart(key, path, fd.get(), size);

  Request r;
  r.method = "PUT";
  r.op = "put";
  r.key = key;
  r.path = ObjectPath(key);
  r.body_fd = fd.get();
  r.body_length = size;
  BACKSTOP_ASSIGN_OR_RETURN(r.body_sha256, S3HashRange(fd.get(), 0, size, path));
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
  return Status::OK();
}

Status S3ObjectStore::PutMultipart(const std::string& key, const std::string& path, int fd,
                                   uint64_t size) {
  Request create;
  create.method = "POST";
  create.op = "start a multipart upload of";
  create.key = key;
  create.path = ObjectPath(key);
  create.query = S3Query({{"uploads", ""}});
  BACKSTOP_ASSIGN_OR_RETURN(Response created, Perform(create));
  if (created.http_status < 200 || created.http_status > 299) return HttpError(create, created);
  std::string upload_id = XmlFirst(created.body, "UploadId");
  if (upload_id.empty()) {
    return Status::Corruption(Where(create.op, key) + ": the answer names no UploadId");
  }

  // Every failure from here on aborts the upload (best effort: S3's
  // lifecycle rules clean up what an abort that fails leaves).
  auto abort_upload = [&](Status why) {
    Request abort;
    abort.method = "DELETE";
    abort.op = "abort the multipart upload of";
    abort.key = key;
    abort.path = ObjectPath(key);
    abort.query = S3Query({{"uploadId", upload_id}});
    (void)Perform(abort);  // `why` is what the caller needs to know
    return why;
  };

  std::vector<std::string> etags;
  uint64_t offset = 0;
  for (int part = 1; offset < size; ++part) {
    uint64_t length = std::min(options_.part_size, size - offset);
    Request r;
    r.method = "PUT";
    r.op = "upload part " + std::to_string(part) + " of";
    r.key = key;
    r.path = ObjectPath(key);
    r.query = S3Query({{"partNumber", std::to_string(part)}, {"uploadId", upload_id}});
    r.body_fd = fd;
    r.body_offset = offset;
    r.body_length = length;
    auto hash = S3HashRange(fd, offset, length, path);
    if (!hash.ok()) return abort_upload(hash.status());
    r.body_sha256 = *hash;
    auto response = Perform(r);
    if (!response.ok()) return abort_upload(response.status());
    if (response->http_status < 200 || response->http_status > 299) {
      return abort_upload(HttpError(r, *response));
    }
    if (response->etag.empty()) {
      return abort_upload(Status::Corruption(Where(r.op, key) + ": the answer has no ETag"));
    }
    etags.push_back(response->etag);
    offset += length;
  }

  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
           XmlEscape(etags[i]) + "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  Request complete;
  complete.method = "POST";
  complete.op = "complete the multipart upload of";
  complete.key = key;
  complete.path = ObjectPath(key);
  complete.query = S3Query({{"uploadId", upload_id}});
  complete.body = xml;
  complete.body_sha256 = Sha256Hex(xml);
  // S3 may answer 200 and then report a failure in the body (the answer
  // started before the parts were assembled): that is retried like a 500.
  for (int attempt = 1;; ++attempt) {
    auto response = Perform(complete);
    if (!response.ok()) return abort_upload(response.status());
    bool ok = response->http_status >= 200 && response->http_status <= 299;
    if (ok && response->body.find("<Error>") == std::string::npos) return Status::OK();
    if (!ok) {
      if (attempt > 1 && XmlFirst(response->body, "Code") == "NoSuchUpload") {
        // An earlier attempt completed it but its answer was lost.
        auto stored = Size(key);
        if (stored.ok() && *stored == size) return Status::OK();
      }
      return abort_upload(HttpError(complete, *response));
    }
    if (attempt >= options_.max_attempts) {
      return abort_upload(Status::Unavailable(Where(complete.op, key) + ": failed " +
                                              std::to_string(attempt) +
                                              " times: " + XmlFirst(response->body, "Code")));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(S3BackoffMs(options_, attempt)));
  }
}

Result<std::string> S3ObjectStore::Get(const std::string& key) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  Request r;
  r.op = "get";
  r.key = key;
  r.path = ObjectPath(key);
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
  return std::move(response.body);
}

Status S3ObjectStore::GetToFile(const std::string& key, const std::string& path) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  std::string temp = path + ".part-" + S3RandomHex();
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno("create " + temp, errno);
  // The partial file goes whatever fails below.
  struct Remover {
    const std::string* path;
    bool keep = false;
    ~Remover() {
      if (!keep) ::unlink(path->c_str());
    }
  } remover{&temp};
  if (::fchmod(fd.get(), 0600) != 0) return Status::FromErrno("chmod " + temp, errno);

  Request r;
  r.op = "get";
  r.key = key;
  r.path = ObjectPath(key);
  r.download_fd = fd.get();
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync " + temp, errno);
  if (::close(fd.release()) != 0) return Status::FromErrno("close " + temp, errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return Status::FromErrno("rename " + temp + " to " + path, errno);
  }
  remover.keep = true;
  UniqueFd dir(::open(Dirname(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid() && ::fsync(dir.get()) != 0) {
    return Status::FromErrno("fsync the directory of " + path, errno);
  }
  return Status::OK();
}

Result<uint64_t> S3ObjectStore::Size(const std::string& key) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  Request r;
  r.method = "HEAD";
  r.op = "size of";
  r.key = key;
  r.path = ObjectPath(key);
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status == 404) {
    // A HEAD's answer has no body to tell a missing key from a missing bucket.
    return NotFoundOrNoBucket(Status::NotFound(Where("size of", key) + ": no such object"));
  }
  if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
  if (response.content_length < 0) {
    return Status::Corruption(Where("size of", key) + ": the answer has no Content-Length");
  }
  return static_cast<uint64_t>(response.content_length);
}

Result<std::vector<ObjectInfo>> S3ObjectStore::List(const std::string& prefix) {
  if (!prefix.empty()) {
    std::string_view trimmed = prefix;
    while (!trimmed.empty() && trimmed.back() == '/') trimmed.remove_suffix(1);
    Status st = CheckObjectKey(trimmed);
    if (!st.ok()) return Status::InvalidArgument("list prefix \"" + prefix + "\" is not allowed");
  }
  std::string base = location_.prefix.empty() ? "" : location_.prefix + "/";
  std::vector<ObjectInfo> out;
  std::string token;
  for (int page = 1;; ++page) {
    std::map<std::string, std::string> params = {{"list-type", "2"}, {"prefix", base + prefix}};
    if (!token.empty()) params["continuation-token"] = token;
    if (options_.list_page_size > 0) params["max-keys"] = std::to_string(options_.list_page_size);
    Request r;
    r.op = "list";
    r.key = prefix;
    r.path = "/" + S3Encode(location_.bucket, false);
    r.query = S3Query(params);
    BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
    if (response.http_status < 200 || response.http_status > 299) return HttpError(r, response);
    for (std::string_view contents : XmlElements(response.body, "Contents")) {
      std::string key = XmlFirst(contents, "Key");
      std::string size = XmlFirst(contents, "Size");
      if (key.rfind(base, 0) != 0) continue;  // not under the prefix: not ours
      ObjectInfo info;
      info.key = key.substr(base.size());
      info.size = std::strtoull(size.c_str(), nullptr, 10);
      out.push_back(std::move(info));
    }
    if (XmlFirst(response.body, "IsTruncated") != "true") break;
    token = XmlFirst(response.body, "NextContinuationToken");
    if (token.empty()) {
      return Status::Corruption(Where("list", prefix) + ": page " + std::to_string(page) +
                                " is truncated but names no continuation token");
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Status S3ObjectStore::Delete(const std::string& key) {
  BACKSTOP_RETURN_IF_ERROR(CheckObjectKey(key));
  Request r;
  r.method = "DELETE";
  r.op = "delete";
  r.key = key;
  r.path = ObjectPath(key);
  BACKSTOP_ASSIGN_OR_RETURN(Response response, Perform(r));
  if (response.http_status >= 200 && response.http_status <= 299) return Status::OK();
  Status error = HttpError(r, response);
  if (error.IsNotFound()) return Status::OK();  // already gone
  return error;
}

}  // namespace backstop
