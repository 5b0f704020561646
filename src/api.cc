// HTTP API and metrics exposition. See api.h.
#include "api.h"

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "hash.h"

namespace backstop {

// --- Token ----------------------------------------------------------------------

namespace {

std::string Trim(std::string s) {
  auto nl = s.find_first_of("\r\n");
  if (nl != std::string::npos) s = s.substr(0, nl);
  size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

std::string Hex(const unsigned char* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string> LoadOrCreateApiToken(Env* env, const std::string& state_dir,
                                         const std::string& token_file, std::string* source) {
  FileSystem* fs = env->fs();
  if (!token_file.empty()) {
    auto text = fs->ReadFile(token_file);
    if (!text.ok()) {
      return Status::InvalidArgument("cannot read the API token file " + token_file + ": " +
                                     text.status().message());
    }
    std::string token = Trim(*text);
    if (token.empty()) {
      return Status::InvalidArgument("the API token file " + token_file +
                                     " is empty; put the token on its first line");
    }
    if (source) *source = "--token-file " + token_file;
    return token;
  }
  if (const char* from_env = std::getenv("BACKSTOP_API_TOKEN"); from_env && *from_env) {
    if (source) *source = "BACKSTOP_API_TOKEN";
    return Trim(from_env);
  }
  const std::string path = JoinPath(state_dir, "api-token");
  if (fs->Exists(path)) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs->ReadFile(path));
    std::string token = Trim(text);
    if (!token.empty()) {
      // Tighten the mode of a token file someone loosened.
      auto info = fs->Stat(path);
      if (info.ok() && (info->mode & 077) != 0) (void)fs->Chmod(path, 0600);
      if (source) *source = path;
      return token;
    }
  }
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return Status::Internal("cannot generate an API token: OpenSSL RAND_bytes failed");
  }
  std::string token = Hex(raw, sizeof raw);
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(state_dir));
  BACKSTOP_RETURN_IF_ERROR(fs->WriteFileAtomic(path, token + "\n", 0600));
  if (source) *source = path + " (generated)";
  return token;
}

bool TokenMatches(const std::string& presented, const std::string& expected) {
  if (expected.empty()) return false;
  // Digests of equal length: the comparison time depends on neither token.
  const std::string a = Sha256Hex(presented);
  const std::string b = Sha256Hex(expected);
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// --- Metrics ----------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i];
    out[i] = running;
  }
  return out;
}

std::vector<double> ProbeLatencyBounds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}
std::vector<double> RunDurationBounds() {
  return {0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
}

std::string PromEscape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  std::ostringstream s;
  s.precision(12);
  s << v;
  return s.str();
}

void Header(std::ostringstream& o, const char* name, const char* type, const char* help) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
}

void RenderHistogram(std::ostringstream& o, const std::string& name, const std::string& labels,
                     const Histogram& h) {
  const auto cum = h.Cumulative();
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < h.bounds().size(); ++i) {
    o << name << "_bucket{" << labels << sep << "le=\"" << Num(h.bounds()[i]) << "\"} " << cum[i]
      << "\n";
  }
  o << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << cum.back() << "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  o << name << "_sum" << braces << " " << Num(h.sum()) << "\n";
  o << name << "_count" << braces << " " << h.count() << "\n";
}

}  // namespace

std::string RenderMetrics(const WatchMetrics& m) {
  std::ostringstream o;
  Header(o, "backstop_probe_success", "gauge",
         "1 if the component's last health probe passed, 0 if it failed.");
  for (const auto& p : m.probes) {
    if (!p.has_result) continue;
    o << "backstop_probe_success{component=\"" << PromEscape(p.component) << "\"} "
      << (p.success ? 1 : 0) << "\n";
  }
  Header(o, "backstop_probes_total", "counter", "Health probes run, by component and result.");
  for (const auto& p : m.probes) {
    o << "backstop_probes_total{component=\"" << PromEscape(p.component)
      << "\",result=\"success\"} " << (p.total - p.failures) << "\n";
    o << "backstop_probes_total{component=\"" << PromEscape(p.component)
      << "\",result=\"failure\"} " << p.failures << "\n";
  }
  Header(o, "backstop_probe_latency_seconds", "histogram", "Health probe latency.");
  for (const auto& p : m.probes) {
    RenderHistogram(o, "backstop_probe_latency_seconds",
                    "component=\"" + PromEscape(p.component) + "\"", p.latency);
  }
  Header(o, "backstop_trigger_state", "gauge",
         "State of each trigger per component: 0 ok, 1 pending, 2 firing.");
  for (const auto& t : m.triggers) {
    o << "backstop_trigger_state{trigger=\"" << PromEscape(t.trigger) << "\",component=\""
      << PromEscape(t.component) << "\"} " << t.state << "\n";
  }
  Header(o, "backstop_runs_total", "counter",
         "Runs started by this watcher (automatic and through the API), by kind and final status.");
  for (const auto& [key, n] : m.runs_total) {
    o << "backstop_runs_total{kind=\"" << PromEscape(key.first) << "\",status=\""
      << PromEscape(key.second) << "\"} " << n << "\n";
  }
  Header(o, "backstop_run_duration_seconds", "histogram", "Duration of finished runs.");
  RenderHistogram(o, "backstop_run_duration_seconds", "", m.run_duration);
  Header(o, "backstop_decisions_total", "counter",
         "Rollback decisions on firing triggers, by outcome (acted, held, dry_run, alert).");
  for (const auto& [outcome, n] : m.decisions_total) {
    o << "backstop_decisions_total{outcome=\"" << PromEscape(outcome) << "\"} " << n << "\n";
  }
  Header(o, "backstop_watch_paused", "gauge", "1 while automatic actions are paused.");
  o << "backstop_watch_paused " << (m.paused ? 1 : 0) << "\n";
  return o.str();
}

// --- Server -------------------------------------------------------------------------

Status ParseListenAddress(const std::string& text, std::string* host, int* port) {
  std::string h, p;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Status::InvalidArgument("--listen " + text + ": expected [v6]:PORT");
    }
    h = text.substr(1, close - 1);
    p = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("--listen " + text +
                                     ": expected ADDR:PORT, e.g. 127.0.0.1:8742");
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
  }
  if (h.empty()) h = "127.0.0.1";
  if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit) ||
      std::stoi(p) > 65535) {
    return Status::InvalidArgument("--listen " + text + ": bad port '" + p + "'");
  }
  *host = h;
  *port = std::stoi(p);
  return Status::OK();
}

class ApiServer::Impl {
 public:
  Impl(ApiBackend* backend, Options options) : backend_(backend), options_(std::move(options)) {}

  Status Start(int* bound_port);
  void Stop();

 private:
  void Log(const std::string& level, const std::string& msg, nlohmann::json fields) {
    if (options_.log) options_.log(level, msg, std::move(fields));
  }
  static void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    res.set_content(body.dump(2) + "\n", "application/json");
  }
  // True when the request carries the right bearer token; otherwise answers 401.
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  void Install();

  ApiBackend* backend_;
  Options options_;
  httplib::Server server_;
  std::thread thread_;
  bool running_ = false;
};

bool ApiServer::Impl::Authorized(const httplib::Request& req, httplib::Response& res) {
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  std::string presented;
  bool has = header.size() > prefix.size() &&
             std::equal(prefix.begin(), prefix.end(), header.begin(),
                        [](char a, char b) { return std::tolower(a) == std::tolower(b); });
  if (has) presented = Trim(header.substr(prefix.size()));
  if (has && TokenMatches(presented, options_.token)) return true;
  // Never log the header or the presented token: only that it was wrong.
  Log("warn", "api: refused an unauthenticated request",
      {{"method", req.method},
       {"path", req.path},
       {"remote", req.remote_addr},
       {"reason", has ? "wrong token" : "no bearer token"}});
  res.set_header("WWW-Authenticate", "Bearer realm=\"backstop\"");
  SendJson(res, 401,
           {{"error", has ? "the bearer token is not valid"
                          : "this endpoint acts: send Authorization: Bearer <token> (the token "
                            "is in <state_dir>/api-token, --token-file or BACKSTOP_API_TOKEN)"},
            {"code", "unauthorized"}});
  return false;
}

void ApiServer::Impl::Install() {
  server_.Get("/api/v1/status", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, backend_->GetStatus());
  });
  server_.Get("/api/v1/runs", [this](const httplib::Request& req, httplib::Response& res) {
    int limit = 50;
    if (req.has_param("limit")) {
      const std::string v = req.get_param_value("limit");
      if (v.empty() || v.size() > 6 || !std::all_of(v.begin(), v.end(), ::isdigit)) {
        SendJson(res, 400, {{"error", "limit must be a number"}, {"code", "bad_request"}});
        return;
      }
      limit = std::stoi(v);
    }
    ApiReply r = backend_->GetRuns(limit);
    SendJson(res, r.status, r.body);
  });
  server_.Get(R"(/api/v1/runs/([A-Za-z0-9._-]+))",
              [this](const httplib::Request& req, httplib::Response& res) {
                ApiReply r = backend_->GetRun(req.matches[1]);
                SendJson(res, r.status, r.body);
              });
  server_.Post("/api/v1/rollback", [this](const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    nlohmann::json body = nlohmann::json::object();
    if (!req.body.empty()) {
      try {
        body = nlohmann::json::parse(req.body);
      } catch (const std::exception& e) {
        SendJson(
            res, 400,
            {{"error", std::string("body is not JSON: ") + e.what()}, {"code", "bad_request"}});
        return;
      }
    }
    if (!body.is_object()) {
      SendJson(res, 400, {{"error", "body must be a JSON object"}, {"code", "bad_request"}});
      return;
    }
    ApiReply r = backend_->RequestRollback(body, "api " + req.remote_addr);
    SendJson(res, r.status, r.body);
  });
  auto pause_handler = [this](bool paused) {
    return [this, paused](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      std::string reason;
      if (!req.body.empty()) {
        try {
          auto j = nlohmann::json::parse(req.body);
          if (j.is_object()) reason = j.value("reason", "");
        } catch (const std::exception&) {
          SendJson(res, 400, {{"error", "body is not JSON"}, {"code", "bad_request"}});
          return;
        }
      }
      ApiReply r = backend_->SetPaused(paused, reason, "api " + req.remote_addr);
      SendJson(res, r.status, r.body);
    };
  };
  server_.Post("/api/v1/pause", pause_handler(true));
  server_.Post("/api/v1/resume", pause_handler(false));
  server_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(backend_->MetricsText(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already answered (e.g. 401)
    std::string msg = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                                        : "HTTP " + std::to_string(res.status);
    res.set_content(
        nlohmann::json({{"error", msg}, {"code", res.status == 404 ? "not_found" : "error"}})
                .dump(2) +
            "\n",
        "application/json");
  });
  server_.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        Log("error", "api: handler failed", {{"path", req.path}, {"error", what}});
        SendJson(res, 500, {{"error", what}, {"code", "internal"}});
      });
}

Status ApiServer::Impl::Start(int* bound_port) {
  Install();
  const int threads = std::max(1, options_.threads);
  server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_.set_payload_max_length(1 << 20);
  server_.set_read_timeout(5, 0);
  server_.set_write_timeout(5, 0);
  server_.set_keep_alive_timeout(2);
  int port = options_.port;
  if (port == 0) {
    port = server_.bind_to_any_port(options_.host);
    if (port <= 0) {
      return Status::IOError("cannot listen on " + options_.host + " (any port)");
    }
  } else if (!server_.bind_to_port(options_.host, port)) {
    return Status::IOError("cannot listen on " + options_.host + ":" + std::to_string(port) +
                           ": address in use or not local; pick another with --listen ADDR:PORT");
  }
  *bound_port = port;
  running_ = true;
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  return Status::OK();
}

void ApiServer::Impl::Stop() {
  if (!running_) return;
  running_ = false;
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

ApiServer::ApiServer(ApiBackend* backend, Options options)
    : impl_(std::make_unique<Impl>(backend, std::move(options))) {}
ApiServer::~ApiServer() { Stop(); }
Status ApiServer::Start() { return impl_->Start(&bound_port_); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace backstop
