#include "testing/nats_server.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/env.h"
#include "testing/ports.h"

namespace backstop::testing {
namespace {

size_t Discard(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

// HTTP status of GET `url`, or 0 when nothing answers.
long HttpStatus(const std::string& url) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return 0;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Discard);
  long code = 0;
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  return code;
}

Status NatsError(const std::string& what, natsStatus s,
                 jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string msg = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last) msg += " (" + std::string(last) + ")";
  if (jerr != 0) msg += " [err_code " + std::to_string(static_cast<int>(jerr)) + "]";
  return Status::Unavailable(msg);
}

}  // namespace

Result<std::unique_ptr<NatsServer>> NatsServer::Start() {
  std::unique_ptr<NatsServer> server(new NatsServer());
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/backstop-nats-XXXXXX";
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) return Status::FromErrno("mkdtemp " + templ, errno);
  server->dir_ = made;
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    BACKSTOP_ASSIGN_OR_RETURN(server->port_, ReserveLoopbackPort());
    BACKSTOP_ASSIGN_OR_RETURN(server->monitor_port_, ReserveLoopbackPort());
    if (server->port_ == server->monitor_port_) continue;
    last = server->Launch();
    if (last.ok()) return server;
  }
  return last;
}

Status NatsServer::Launch() {
  std::string log = JoinPath(dir_, "server.log");
  std::string out = JoinPath(dir_, "server.out");
  std::string js_dir = JoinPath(dir_, "js");
  std::string port = std::to_string(port_);
  std::string mport = std::to_string(monitor_port_);
  pid_t pid = ::fork();
  if (pid < 0) return Status::FromErrno("fork", errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execlp("nats-server", "nats-server", "-a", "127.0.0.1", "-js", "-sd", js_dir.c_str(), "-p",
             port.c_str(), "-m", mport.c_str(), "-l", log.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("nats-server exited during start-up (ports " + port + ", " +
                                 mport + "): " + LogTail());
    }
    if (HttpStatus(monitor_url() + "/healthz") == 200) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  (void)Stop();
  return Status::Timeout("nats-server did not answer /healthz within 15 s: " + LogTail());
}

NatsServer::~NatsServer() {
  (void)Stop();
  if (!dir_.empty() && std::getenv("BACKSTOP_KEEP_TEST_DIRS") == nullptr) {
    (void)Env::Default()->fs()->RemoveAll(dir_);
  }
}

Status NatsServer::Stop() {
  if (pid_ <= 0) return Status::OK();
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    int wstatus = 0;
    pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_ || r < 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &wstatus, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return Status::OK();
}

Status NatsServer::Restart() {
  BACKSTOP_RETURN_IF_ERROR(Stop());
  // The old listener may linger for a moment; retry briefly on the same ports.
  Status st;
  for (int attempt = 0; attempt < 20; ++attempt) {
    st = Launch();
    if (st.ok()) return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return st;
}

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
std::string NatsServer::monitor_url() const {
  return "http://127.0.0.1:" + std::to_string(monitor_port_);
}

std::string NatsServer::LogTail() const {
  std::string text;
  for (const char* name : {"server.out", "server.log"}) {
    auto content = Env::Default()->fs()->ReadFile(JoinPath(dir_, name));
    if (content.ok()) text += *content;
  }
  if (text.size() > 2000) text = text.substr(text.size() - 2000);
  return text;
}

// --- NatsTestClient ----------------------------------------------------------

Result<std::unique_ptr<NatsTestClient>> NatsTestClient::Connect(const std::string& url) {
  std::unique_ptr<NatsTestClient> client(new NatsTestClient());
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 5000);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, false);
  if (s == NATS_OK) s = natsConnection_Connect(&client->nc_, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return NatsError("connect " + url, s);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 10000;
  s = natsConnection_JetStream(&client->js_, client->nc_, &jo);
  if (s != NATS_OK) return NatsError("JetStream context", s);
  return client;
}

NatsTestClient::~NatsTestClient() {
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
}

Status NatsTestClient::AddStream(const std::string& name,
                                 const std::vector<std::string>& subjects) {
  std::vector<const char*> subs;
  for (const auto& s : subjects) subs.push_back(s.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subs.data();
  cfg.SubjectsLen = static_cast<int>(subs.size());
  cfg.Storage = js_FileStorage;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
  if (si != nullptr) jsStreamInfo_Destroy(si);
  if (s != NATS_OK) return NatsError("add stream " + name, s, jerr);
  return Status::OK();
}

Result<uint64_t> NatsTestClient::Publish(const std::string& subject, const std::string& data) {
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(), static_cast<int>(data.size()),
                            nullptr, &jerr);
  if (s != NATS_OK) return NatsError("publish to " + subject, s, jerr);
  uint64_t seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return seq;
}

Status NatsTestClient::PublishMany(const std::string& subject, int count, size_t size,
                                   const std::string& prefix) {
  for (int i = 0; i < count; ++i) {
    std::string data = prefix + "-" + std::to_string(i);
    if (data.size() < size) data.append(size - data.size(), 'x');
    natsStatus s =
        js_PublishAsync(js_, subject.c_str(), data.data(), static_cast<int>(data.size()), nullptr);
    if (s != NATS_OK) return NatsError("async publish to " + subject, s);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  natsStatus s = js_PublishAsyncComplete(js_, &po);
  if (s != NATS_OK) return NatsError("waiting for publish acks on " + subject, s);
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) {
    int n = pending.Count;
    natsMsgList_Destroy(&pending);
    if (n > 0) return Status::Unavailable(std::to_string(n) + " async publishes failed");
  }
  return Status::OK();
}

Status NatsTestClient::AddDurablePullConsumer(const std::string& stream, const std::string& durable,
                                              const std::string& filter,
                                              const std::string& description) {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  if (!filter.empty()) cc.FilterSubject = filter.c_str();
  if (!description.empty()) cc.Description = description.c_str();
  cc.MaxAckPending = 5000;
  jsConsumerInfo* ci = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_AddConsumer(&ci, js_, stream.c_str(), &cc, nullptr, &jerr);
  if (ci != nullptr) jsConsumerInfo_Destroy(ci);
  if (s != NATS_OK) return NatsError("add consumer " + stream + "/" + durable, s, jerr);
  return Status::OK();
}

Status NatsTestClient::FetchAndAck(const std::string& stream, const std::string& durable,
                                   int count) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Consumer = durable.c_str();
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PullSubscribe(&sub, js_, nullptr, durable.c_str(), nullptr, &so, &jerr);
  if (s != NATS_OK) return NatsError("pull subscribe " + stream + "/" + durable, s, jerr);
  int got = 0;
  Status result;
  while (got < count && result.ok()) {
    natsMsgList list{};
    s = natsSubscription_Fetch(&list, sub, count - got, 5000, &jerr);
    if (s != NATS_OK) {
      result = NatsError("fetch " + stream + "/" + durable, s, jerr);
      break;
    }
    for (int i = 0; i < list.Count; ++i) {
      s = natsMsg_AckSync(list.Msgs[i], nullptr, &jerr);
      if (s != NATS_OK && result.ok()) result = NatsError("ack", s, jerr);
      ++got;
    }
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Destroy(sub);
  return result;
}

Result<NatsTestMessage> NatsTestClient::GetMessage(const std::string& stream, uint64_t sequence) {
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&msg, js_, stream.c_str(), sequence, nullptr, &jerr);
  if (s != NATS_OK) {
    return NatsError("get " + stream + " #" + std::to_string(sequence), s, jerr);
  }
  NatsTestMessage out;
  out.sequence = sequence;
  out.subject = natsMsg_GetSubject(msg);
  out.data.assign(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  return out;
}

Status NatsTestClient::DeleteMessage(const std::string& stream, uint64_t sequence) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteMsg(js_, stream.c_str(), sequence, nullptr, &jerr);
  if (s != NATS_OK) return NatsError("delete " + stream + " #" + std::to_string(sequence), s, jerr);
  return Status::OK();
}

Status NatsTestClient::DeleteStream(const std::string& name) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteStream(js_, name.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return NatsError("delete stream " + name, s, jerr);
  return Status::OK();
}

Result<std::string> NatsTestClient::RawRequest(const std::string& subject,
                                               const std::string& body) {
  natsMsg* reply = nullptr;
  natsStatus s = natsConnection_Request(&reply, nc_, subject.c_str(), body.data(),
                                        static_cast<int>(body.size()), 10000);
  if (s != NATS_OK) return NatsError("request " + subject, s);
  std::string out(natsMsg_GetData(reply), natsMsg_GetDataLength(reply));
  natsMsg_Destroy(reply);
  return out;
}

}  // namespace backstop::testing
