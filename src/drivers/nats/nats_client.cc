#include "drivers/nats/nats_client.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "base/crash_point.h"
#include "base/fd.h"

namespace backstop::nats {
namespace {

using nlohmann::json;

// Owners for nats.c objects, so that every error path releases them.
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

struct SubDeleter {
  void operator()(natsSubscription* s) const {
    natsSubscription_Unsubscribe(s);
    natsSubscription_Destroy(s);
  }
};
using SubPtr = std::unique_ptr<natsSubscription, SubDeleter>;

struct JsDeleter {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};

struct MetaDeleter {
  void operator()(jsMsgMetaData* m) const { jsMsgMetaData_Destroy(m); }
};

std::string_view MsgData(natsMsg* m) {
  const char* d = natsMsg_GetData(m);
  int n = natsMsg_GetDataLength(m);
  return (d == nullptr || n <= 0) ? std::string_view() : std::string_view(d, n);
}

// "(code 404, err_code 10059)"
std::string ErrorCodes(const json& err) {
  std::string out = "(code " + std::to_string(err.value("code", 0));
  if (err.contains("err_code")) out += ", err_code " + std::to_string(err.value("err_code", 0));
  return out + ")";
}

// Turns a JetStream API reply into JSON or a Status naming `subject`.
Result<json> ParseApiReply(const std::string& subject, std::string_view data) {
  json reply;
  try {
    reply = json::parse(data);
  } catch (const std::exception& e) {
    std::string shown(data.substr(0, 200));
    return Status::Internal(subject + ": the server's reply is not JSON (" + e.what() +
                            "): " + shown);
  }
  if (!reply.is_object())
    return Status::Internal(subject + ": the server's reply is not an object");
  auto it = reply.find("error");
  if (it != reply.end() && it->is_object()) {
    const json& err = *it;
    std::string desc = err.value("description", std::string("unknown error"));
    std::string msg = subject + ": " + desc + " " + ErrorCodes(err);
    int err_code = err.value("err_code", 0);
    if (err_code == kErrStreamNotFound || err_code == kErrConsumerNotFound ||
        err_code == kErrNoMessageFound) {
      return Status::NotFound(msg);
    }
    if (err.value("code", 0) == 503) return Status::Unavailable(msg);
    return Status::FailedPrecondition(msg);
  }
  return reply;
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("write " + path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

// Reads up to `buf.size()` bytes; returns how many (0 at the end).
Result<size_t> ReadChunk(int fd, std::string& buf, const std::string& path) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno("read " + path, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

// Status and description headers of a status message (e.g. "408 ...").
std::string StatusHeaders(natsMsg* m) {
  const char* status = nullptr;
  if (natsMsgHeader_Get(m, "Status", &status) != NATS_OK || status == nullptr) return "";
  std::string out = status;
  const char* desc = nullptr;
  if (natsMsgHeader_Get(m, "Description", &desc) == NATS_OK && desc != nullptr) {
    out += std::string(" ") + desc;
  }
  return out;
}

int64_t ChunkLimit(Connection& conn, int64_t chunk_size) {
  int64_t max_payload = natsConnection_GetMaxPayload(conn.raw());
  if (chunk_size <= 0) chunk_size = 128 * 1024;
  // Leave room for protocol overhead below the server's max_payload.
  if (max_payload > 1024 && chunk_size > max_payload - 512) chunk_size = max_payload - 512;
  return chunk_size;
}

}  // namespace

std::string RedactUrl(const std::string& url) {
  std::string out;
  size_t pos = 0;
  // Several URLs may be given, separated by commas.
  while (pos <= url.size()) {
    size_t end = url.find(',', pos);
    if (end == std::string::npos) end = url.size();
    std::string one = url.substr(pos, end - pos);
    size_t scheme = one.find("://");
    size_t start = scheme == std::string::npos ? 0 : scheme + 3;
    size_t at = one.find('@', start);
    if (at != std::string::npos) {
      size_t colon = one.find(':', start);
      if (colon != std::string::npos && colon < at) {
        one = one.substr(0, colon + 1) + "***" + one.substr(at);
      } else {
        one = one.substr(0, start) + "***" + one.substr(at);
      }
    }
    if (!out.empty() || pos > 0) out += ",";
    out += one;
    pos = end + 1;
  }
  return out;
}

Status NatsCallError(const std::string& what, natsStatus s) {
  std::string msg = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && std::string_view(last) != natsStatus_GetText(s)) {
    msg += " (" + std::string(last) + ")";
  }
  switch (s) {
    case NATS_TIMEOUT:
      return Status::Timeout(msg);
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_NO_RESPONDERS:
    case NATS_IO_ERROR:
    case NATS_STALE_CONNECTION:
      return Status::Unavailable(msg);
    case NATS_NOT_PERMITTED:
    case NATS_CONNECTION_AUTH_FAILED:
      return Status::FailedPrecondition(msg);
    default:
      return Status::Unavailable(msg);
  }
}

Result<std::unique_ptr<Connection>> Connection::Open(const ConnectOptions& options) {
  std::unique_ptr<Connection> conn(new Connection());
  conn->options_ = options;
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, options.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options.connect_timeout_ms);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, false);
  if (s == NATS_OK) s = natsOptions_SetName(opts, "backstop");
  if (s == NATS_OK && !options.credentials_file.empty()) {
    s = natsOptions_SetUserCredentialsFromFiles(opts, options.credentials_file.c_str(), nullptr);
  }
  if (s == NATS_OK && !options.user.empty()) {
    s = natsOptions_SetUserInfo(opts, options.user.c_str(), options.password.c_str());
  }
  if (s != NATS_OK) {
    natsOptions_Destroy(opts);
    return NatsCallError("NATS options for " + RedactUrl(options.url), s);
  }
  s = natsConnection_Connect(&conn->nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) {
    conn->nc_ = nullptr;
    return NatsCallError("cannot connect to NATS at " + RedactUrl(options.url), s);
  }
  return conn;
}

Connection::~Connection() {
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    natsConnection_Destroy(nc_);
  }
}

Result<json> Connection::ApiRequest(const std::string& subject, const json& body,
                                    int64_t timeout_ms) {
  if (timeout_ms <= 0) timeout_ms = options_.request_timeout_ms;
  std::string payload = body.is_null() ? std::string() : body.dump();
  natsMsg* raw_reply = nullptr;
  natsStatus s = natsConnection_Request(&raw_reply, nc_, subject.c_str(), payload.data(),
                                        static_cast<int>(payload.size()), timeout_ms);
  MsgPtr reply(raw_reply);
  if (s == NATS_NO_RESPONDERS) {
    return Status::Unavailable(subject + ": no responders at " + display_url() +
                               ": JetStream is not enabled for this account or server");
  }
  if (s == NATS_TIMEOUT) {
    return Status::Timeout(subject + ": no reply from " + display_url() + " within " +
                           std::to_string(timeout_ms) + " ms");
  }
  if (s != NATS_OK) return NatsCallError(subject + " at " + display_url(), s);
  return ParseApiReply(subject, MsgData(reply.get()));
}

Result<json> GetStreamInfo(Connection& conn, const std::string& stream) {
  return conn.ApiRequest("$JS.API.STREAM.INFO." + stream, json());
}

Status DeleteStream(Connection& conn, const std::string& stream) {
  auto r = conn.ApiRequest("$JS.API.STREAM.DELETE." + stream, json());
  return r.status();
}

Result<std::vector<json>> ListConsumers(Connection& conn, const std::string& stream) {
  std::vector<json> out;
  const std::string subject = "$JS.API.CONSUMER.LIST." + stream;
  while (true) {
    BACKSTOP_ASSIGN_OR_RETURN(json page, conn.ApiRequest(subject, json{{"offset", out.size()}}));
    const json& list = page.contains("consumers") && page["consumers"].is_array()
                           ? page["consumers"]
                           : json::array();
    for (const auto& ci : list) out.push_back(ci);
    uint64_t total = page.value("total", uint64_t{0});
    if (list.empty() || out.size() >= total) break;
  }
  return out;
}

Result<SnapshotResult> SnapshotStreamToFile(Connection& conn, const std::string& stream,
                                            int64_t chunk_size, const std::string& path) {
  const std::string subject = "$JS.API.STREAM.SNAPSHOT." + stream;
  natsInbox* inbox_raw = nullptr;
  natsStatus s = natsInbox_Create(&inbox_raw);
  if (s != NATS_OK) return NatsCallError("creating an inbox", s);
  std::string inbox = inbox_raw;
  natsInbox_Destroy(inbox_raw);

  natsSubscription* sub_raw = nullptr;
  s = natsConnection_SubscribeSync(&sub_raw, conn.raw(), inbox.c_str());
  if (s != NATS_OK) return NatsCallError(subject + ": subscribing to the deliver subject", s);
  SubPtr sub(sub_raw);
  // The server's flow-control window (32 MB) bounds what can pile up here.
  (void)natsSubscription_SetPendingLimits(sub.get(), -1, -1);

  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (fd.get() < 0) return Status::FromErrno("open " + path, errno);

  json request = {{"deliver_subject", inbox},
                  {"chunk_size", ChunkLimit(conn, chunk_size)},
                  {"no_consumers", false}};
  BACKSTOP_ASSIGN_OR_RETURN(json reply, conn.ApiRequest(subject, request));
  SnapshotResult result;
  result.config = reply.value("config", json::object());
  result.state = reply.value("state", json::object());

  const int64_t timeout = conn.options().request_timeout_ms;
  while (true) {
    natsMsg* raw = nullptr;
    s = natsSubscription_NextMsg(&raw, sub.get(), timeout);
    MsgPtr msg(raw);
    if (s == NATS_TIMEOUT) {
      return Status::Timeout(subject + ": no snapshot chunk from " + conn.display_url() +
                             " within " + std::to_string(timeout) + " ms after " +
                             std::to_string(result.chunks) + " chunks (" +
                             std::to_string(result.bytes) + " bytes)");
    }
    if (s != NATS_OK) {
      return NatsCallError(
          subject + ": receiving snapshot chunk " + std::to_string(result.chunks + 1), s);
    }
    std::string_view data = MsgData(msg.get());
    if (data.empty()) {
      // The end marker has no headers; newer servers report errors as an
      // empty message with a status header.
      std::string status = StatusHeaders(msg.get());
      if (!status.empty()) {
        return Status::Unavailable(subject +
                                   ": the server ended the snapshot with an error: " + status);
      }
      break;
    }
    BACKSTOP_RETURN_IF_ERROR(WriteAll(fd.get(), data, path));
    result.bytes += data.size();
    ++result.chunks;
    const char* ack = natsMsg_GetReply(msg.get());
    // The server sends the final partial chunk without a reply subject.
    if (ack != nullptr && *ack != '\0') {
      s = natsConnection_Publish(conn.raw(), ack, nullptr, 0);
      if (s != NATS_OK) return NatsCallError(subject + ": acking snapshot chunk", s);
    }
  }
  if (::fsync(fd.get()) != 0) return Status::FromErrno("fsync " + path, errno);
  if (::close(fd.release()) != 0) return Status::FromErrno("close " + path, errno);
  return result;
}

Result<json> RestoreStreamFromFile(Connection& conn, const std::string& stream, const json& config,
                                   const json& state, const std::string& path, int64_t chunk_size,
                                   const RestoreHooks& hooks) {
  const std::string subject = "$JS.API.STREAM.RESTORE." + stream;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::FromErrno("open " + path, errno);
  off_t file_size = ::lseek(fd.get(), 0, SEEK_END);
  ::lseek(fd.get(), 0, SEEK_SET);

  BACKSTOP_ASSIGN_OR_RETURN(json reply,
                            conn.ApiRequest(subject, json{{"config", config}, {"state", state}}));
  std::string deliver = reply.value("deliver_subject", std::string());
  if (deliver.empty()) {
    return Status::Internal(subject + ": the reply names no deliver_subject: " + reply.dump());
  }

  const int64_t timeout = conn.options().request_timeout_ms;
  std::string buf(static_cast<size_t>(ChunkLimit(conn, chunk_size)), '\0');
  uint64_t sent = 0;
  int64_t chunks = 0;
  while (hooks.truncate_after_chunks < 0 || chunks < hooks.truncate_after_chunks) {
    BACKSTOP_ASSIGN_OR_RETURN(size_t n, ReadChunk(fd.get(), buf, path));
    if (n == 0) break;
    natsMsg* raw = nullptr;
    natsStatus s = natsConnection_Request(&raw, conn.raw(), deliver.c_str(), buf.data(),
                                          static_cast<int>(n), timeout);
    MsgPtr ack(raw);
    std::string where = subject + ": chunk " + std::to_string(chunks + 1) + " (byte " +
                        std::to_string(sent) + " of " + std::to_string(file_size) + ")";
    if (s == NATS_TIMEOUT) {
      return Status::Timeout(where + ": no ack within " + std::to_string(timeout) + " ms");
    }
    if (s == NATS_NO_RESPONDERS) {
      return Status::Unavailable(where + ": the server is no longer receiving this restore");
    }
    if (s != NATS_OK) return NatsCallError(where, s);
    std::string_view data = MsgData(ack.get());
    if (!data.empty()) {
      // A failed chunk is answered with the final error instead of an empty ack.
      auto parsed = ParseApiReply(subject, data);
      if (!parsed.ok()) return parsed.status().WithContext("chunk " + std::to_string(chunks + 1));
      return Status::Internal(where + ": unexpected reply: " + std::string(data.substr(0, 200)));
    }
    sent += n;
    ++chunks;
    // A kill here leaves a half-made stream on the server (the restore is
    // not finished): the resumed run must delete it and start again.
    CrashPointForTest("nats.restore-chunk");
  }
  // The server finishes the restore before replying to the end marker: give
  // it time in proportion to the size (at least 20 MB/s) on top of the timeout.
  int64_t final_timeout = timeout + static_cast<int64_t>(file_size / (20 * 1024));
  natsMsg* raw = nullptr;
  natsStatus s =
      natsConnection_Request(&raw, conn.raw(), deliver.c_str(), nullptr, 0, final_timeout);
  MsgPtr done(raw);
  if (s == NATS_TIMEOUT) {
    return Status::Timeout(subject + ": the server did not finish the restore within " +
                           std::to_string(final_timeout) + " ms after " + std::to_string(chunks) +
                           " chunks");
  }
  if (s != NATS_OK) return NatsCallError(subject + ": end of restore", s);
  return ParseApiReply(subject, MsgData(done.get()));
}

Status ForEachMessage(Connection& conn, const std::string& stream, uint64_t from_seq,
                      uint64_t to_seq, const std::function<Status(const MessageMeta&)>& fn,
                      bool with_payload) {
  if (from_seq == 0) from_seq = 1;
  if (from_seq > to_seq) return Status::OK();
  // Find the first message at or after from_seq: the range may hold none
  // (deleted, or consumed from a work queue), and a consumer would then only
  // time out.
  auto first = conn.ApiRequest("$JS.API.STREAM.MSG.GET." + stream,
                               json{{"seq", from_seq}, {"next_by_subj", ">"}});
  if (first.status().IsNotFound()) return Status::OK();
  if (!first.ok()) return first.status();
  uint64_t start = (*first)["message"].value("seq", uint64_t{0});
  if (start == 0 || start > to_seq) return Status::OK();

  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = conn.options().request_timeout_ms;
  jsCtx* js_raw = nullptr;
  natsStatus s = natsConnection_JetStream(&js_raw, conn.raw(), &jo);
  if (s != NATS_OK) return NatsCallError("JetStream context", s);
  std::unique_ptr<jsCtx, JsDeleter> js(js_raw);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  so.Config.OptStartSeq = start;
  so.Config.HeadersOnly = !with_payload;
  natsSubscription* sub_raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  // nats.c requires a subject; ">" (every subject of the stream) passes the
  // server's filter check as a wider scope than the stream's subjects.
  s = js_SubscribeSync(&sub_raw, js.get(), ">", &jo, &so, &jerr);
  if (s != NATS_OK) {
    return NatsCallError("ordered consumer on stream " + stream + " from sequence " +
                             std::to_string(start) + " (err_code " +
                             std::to_string(static_cast<int>(jerr)) + ")",
                         s);
  }
  SubPtr sub(sub_raw);
  // An ordered consumer runs with flow control: the server's window bounds
  // what can pile up here. nats.c's own limit counts messages (65,536), and
  // headers-only messages fit the window many more at a time: a reader slower
  // than the server (a loaded host) then lost messages ("Slow Consumer") and
  // the ledger failed.
  (void)natsSubscription_SetPendingLimits(sub.get(), -1, -1);
  const int64_t timeout = conn.options().request_timeout_ms;
  uint64_t last_seen = start - 1;
  while (true) {
    natsMsg* raw = nullptr;
    s = natsSubscription_NextMsg(&raw, sub.get(), timeout);
    MsgPtr msg(raw);
    if (s == NATS_TIMEOUT) {
      return Status::Timeout("stream " + stream + ": no message after sequence " +
                             std::to_string(last_seen) + " within " + std::to_string(timeout) +
                             " ms while reading up to " + std::to_string(to_seq));
    }
    if (s != NATS_OK) return NatsCallError("reading stream " + stream, s);
    jsMsgMetaData* meta_raw = nullptr;
    s = natsMsg_GetMetaData(&meta_raw, msg.get());
    if (s != NATS_OK) return NatsCallError("metadata of a message of stream " + stream, s);
    std::unique_ptr<jsMsgMetaData, MetaDeleter> meta(meta_raw);
    uint64_t seq = meta->Sequence.Stream;
    if (seq > to_seq) break;
    MessageMeta m;
    m.sequence = seq;
    const char* subj = natsMsg_GetSubject(msg.get());
    m.subject = subj == nullptr ? "" : subj;
    m.time_ns = meta->Timestamp;
    const char* size = nullptr;
    if (!with_payload && natsMsgHeader_Get(msg.get(), JSMsgSize, &size) == NATS_OK &&
        size != nullptr) {
      m.size = std::strtoull(size, nullptr, 10);
    } else {
      m.size = MsgData(msg.get()).size();
    }
    if (with_payload) {
      m.data = std::string(MsgData(msg.get()));
      const char** keys = nullptr;
      int nkeys = 0;
      if (natsMsgHeader_Keys(msg.get(), &keys, &nkeys) == NATS_OK) {
        for (int k = 0; k < nkeys; ++k) {
          const char** values = nullptr;
          int nvalues = 0;
          if (natsMsgHeader_Values(msg.get(), keys[k], &values, &nvalues) != NATS_OK) continue;
          for (int v = 0; v < nvalues; ++v) m.headers.emplace_back(keys[k], values[v]);
          free(values);
        }
        free(keys);
      }
    }
    BACKSTOP_RETURN_IF_ERROR(fn(m));
    last_seen = seq;
    if (seq >= to_seq || meta->NumPending == 0) break;
  }
  return Status::OK();
}

Result<uint64_t> PublishToStream(Connection& conn, const std::string& subject,
                                 const std::vector<std::pair<std::string, std::string>>& headers,
                                 const std::string& data) {
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, subject.c_str(), nullptr, data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) return NatsCallError("message for " + subject, s);
  MsgPtr msg(raw);
  for (const auto& [key, value] : headers) {
    s = natsMsgHeader_Add(msg.get(), key.c_str(), value.c_str());
    if (s != NATS_OK) return NatsCallError("header " + key + " of a message for " + subject, s);
  }
  natsMsg* raw_ack = nullptr;
  s = natsConnection_RequestMsg(&raw_ack, conn.raw(), msg.get(), conn.options().request_timeout_ms);
  MsgPtr ack(raw_ack);
  if (s == NATS_NO_RESPONDERS) {
    return Status::NotFound("publishing to " + subject + ": no stream takes this subject");
  }
  if (s != NATS_OK) return NatsCallError("publishing to " + subject, s);
  BACKSTOP_ASSIGN_OR_RETURN(json reply, ParseApiReply("publish " + subject, MsgData(ack.get())));
  return reply.value("seq", uint64_t{0});
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0)
    return Status::InvalidArgument("not base64 (length not a multiple of 4)");
  std::string out(3 * (text.size() / 4), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return Status::InvalidArgument("not base64");
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --len;
  out.resize(len);
  return out;
}

}  // namespace backstop::nats
