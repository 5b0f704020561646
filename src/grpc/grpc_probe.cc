// The gRPC health probe. See grpc_probe.h.
//
// Why the channel handling looks the way it does:
// - One channel per target, kept: a Check on a READY channel is one round trip.
// - A fail-fast call (wait_for_ready off) on a channel in TRANSIENT_FAILURE
//   fails at once with UNAVAILABLE without trying to connect: the channel is
//   waiting out its reconnect backoff. That is right while the server is down
//   but wrong once it is back, so such a channel is replaced by a fresh one
//   (which connects right away), and a call that fails UNAVAILABLE on a cached
//   channel is tried once more on a fresh one, within the same deadline.
// - Each channel has its own subchannels (GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL):
//   gRPC otherwise shares connections between channels to the same address,
//   and a "fresh" channel could inherit the backoff of an old one that a
//   probe on another thread still holds.
// - Nothing waits for the channel to connect outside the call: the call's
//   own deadline bounds connecting too, so a probe never outlives timeout_ms.
#include "grpc_probe.h"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "health.grpc.pb.h"
#include "probe/probe.h"

namespace backstop::grpc_probe {
namespace {

using ::grpc::health::v1::Health;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using State = HealthResult::State;
using SteadyTime = std::chrono::steady_clock::time_point;

std::atomic<size_t> g_channels_created{0};

// "10 s" for whole seconds, "250 ms" otherwise, as the other probes write it.
std::string FormatTimeout(int64_t ms) {
  if (ms >= 1000 && ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

int64_t MillisSince(SteadyTime start) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  return us <= 0 ? 0 : (us + 500) / 1000;
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "code " + std::to_string(static_cast<int>(code));
  }
}

// Channels by target. Never destroyed (see Cache()).
class ChannelCache {
 public:
  // The channel for `target`: the cached one unless `force_fresh` or it can
  // no longer serve a call without first waiting out a reconnect backoff.
  // *fresh says whether the channel was just created.
  std::shared_ptr<grpc::Channel> Get(const std::string& target, bool force_fresh, bool* fresh) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = channels_.find(target);
    if (it != channels_.end() && !force_fresh) {
      grpc_connectivity_state state = it->second->GetState(/*try_to_connect=*/false);
      if (state != GRPC_CHANNEL_TRANSIENT_FAILURE && state != GRPC_CHANNEL_SHUTDOWN) {
        *fresh = false;
        return it->second;
      }
    }
    std::shared_ptr<grpc::Channel> channel = NewChannel(target);
    channels_[target] = channel;
    *fresh = true;
    return channel;
  }

 private:
  static std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // Health targets are local or private: a proxy from the environment
    // (http_proxy) would only get in the way, as for the HTTP probe.
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    // Short backoffs: a channel that lost its server comes back within a
    // second. Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the
    // shortest connect timeout, and a small one fails slow handshakes early.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetUserAgentPrefix("backstop-probe");
    ++g_channels_created;
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<grpc::Channel>> channels_;  // guarded by mu_
};

// Leaked on purpose: destroying channels during static destruction, after
// gRPC's own globals may be gone, crashes at exit.
ChannelCache& Cache() {
  static ChannelCache* cache = new ChannelCache;
  return *cache;
}

grpc::Status CallCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                       SteadyTime deadline, HealthCheckResponse* response) {
  std::unique_ptr<Health::Stub> stub = Health::NewStub(channel);
  grpc::ClientContext context;
  // The system clock deadline gRPC wants, from the steady one we measure with.
  context.set_deadline(std::chrono::system_clock::now() +
                       (deadline - std::chrono::steady_clock::now()));
  HealthCheckRequest request;
  request.set_service(service);
  return stub->Check(&context, request, response);
}

HealthResult FromResponse(const ProbeSpec& probe, const HealthCheckResponse& response,
                          int64_t latency_ms) {
  const auto status = response.status();
  HealthResult r;
  r.latency_ms = latency_ms;
  r.signals["grpc_health_status"] = static_cast<double>(status);
  if (status == HealthCheckResponse::SERVING) {
    r.state = State::kPass;
    r.detail = "SERVING in " + std::to_string(latency_ms) + " ms";
    return r;
  }
  // grpc_health_probe treats every answer but SERVING as "unhealthy".
  std::string why;
  if (!probe.grpc_service.empty()) why = "service '" + probe.grpc_service + "'";
  if (status != HealthCheckResponse::NOT_SERVING) {
    if (!why.empty()) why += ", ";
    const std::string& name = HealthCheckResponse::ServingStatus_Name(status);
    why += "status " + (name.empty() ? std::to_string(static_cast<int>(status)) : name);
  }
  r.state = State::kFail;
  r.detail = why.empty() ? "NOT_SERVING" : "NOT_SERVING (" + why + ")";
  return r;
}

// gRPC's UNAVAILABLE messages are long ("failed to connect to all
// addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to
// remote host: Connection refused"): the common causes, said briefly.
std::string WhyUnavailable(const std::string& target, const std::string& message) {
  if (message.find("Connection refused") != std::string::npos) return "connection refused";
  if (message.find("DNS resolution failed") != std::string::npos) {
    return "cannot resolve the host of " + target +
           (message.find("Domain name not found") != std::string::npos ? " (no such name)" : "");
  }
  return message.empty() ? "no connection" : message;
}

HealthResult FromError(const ProbeSpec& probe, const grpc::Status& status, int64_t timeout_ms,
                       int64_t latency_ms) {
  std::string detail;
  switch (status.error_code()) {
    case grpc::StatusCode::NOT_FOUND:
      detail = probe.grpc_service.empty()
                   ? "the server reports no overall health (NOT_FOUND); name a service in "
                     "the probe's 'service'"
                   : "service '" + probe.grpc_service + "' not found (NOT_FOUND)";
      break;
    case grpc::StatusCode::UNAVAILABLE:
      detail = "unavailable: " + WhyUnavailable(probe.target, status.error_message());
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      detail = "timed out after " + FormatTimeout(timeout_ms);
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      detail = "the server at " + probe.target +
               " does not implement grpc.health.v1.Health (UNIMPLEMENTED)";
      break;
    default:
      detail = "health check failed: " + CodeName(status.error_code());
      if (!status.error_message().empty()) detail += ": " + status.error_message();
  }
  HealthResult r = HealthResult::Make(State::kFail, latency_ms, std::move(detail));
  r.signals["grpc_code"] = static_cast<double>(status.error_code());
  return r;
}

}  // namespace

HealthResult CheckGrpcHealth(const ProbeSpec& probe) {
  const int64_t timeout_ms = probe.timeout_ms > 0 ? probe.timeout_ms : 10'000;
  const SteadyTime start = std::chrono::steady_clock::now();
  const SteadyTime deadline = start + std::chrono::milliseconds(timeout_ms);
  HealthCheckResponse response;
  grpc::Status status;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = false;
    std::shared_ptr<grpc::Channel> channel = Cache().Get(probe.target, attempt > 0, &fresh);
    response.Clear();
    status = CallCheck(channel, probe.grpc_service, deadline, &response);
    // Only "unavailable on a connection we had" deserves a second look: the
    // server may have restarted since. A fresh channel's answer stands.
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || fresh ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
  }
  const int64_t latency_ms = MillisSince(start);
  if (status.ok()) return FromResponse(probe, response, latency_ms);
  return FromError(probe, status, timeout_ms, latency_ms);
}

void RegisterGrpcProbe() { SetGrpcProbe(&CheckGrpcHealth); }

size_t ChannelsCreatedForTesting() { return g_channels_created.load(); }

}  // namespace backstop::grpc_probe
