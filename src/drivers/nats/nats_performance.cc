// NatsDriver::MeasurePerformance: the seed's `nats bench --msgs=1000
// --size=256`, with nats.c. Core NATS publish and subscribe on a private
// subject (_BACKSTOP.perf.<random>), so no user data is written: before
// anything is sent, the JetStream API is asked which streams would capture
// the subject, and the measurement is refused naming them if any would
// (a stream listening on ">" would store the benchmark's messages).
//
// publish rate: messages / time from the first publish to the flush that
//               confirms the server has them all;
// consume rate: messages / time from the first publish to the last one
//               received by the subscriber on the same connection;
// each the median of performance.samples runs.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "drivers/nats/nats_driver.h"
#include "drivers/nats/nats_settings.h"

namespace backstop::nats {
namespace {

constexpr int64_t kFlushTimeoutMs = 10000;
constexpr int64_t kReceiveTimeoutMs = 5000;  // for each message, once the publishing is done

std::string PrivateSubject() {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  static const char* kHex = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 12; ++i) suffix.push_back(kHex[rng() & 15]);
  return "_BACKSTOP.perf." + suffix;
}

// The streams whose subjects match `subject`: $JS.API.STREAM.NAMES with a
// subject filter.
Result<std::vector<std::string>> StreamsCapturing(Connection& conn, const std::string& subject) {
  BACKSTOP_ASSIGN_OR_RETURN(nlohmann::json reply,
                            conn.ApiRequest("$JS.API.STREAM.NAMES", {{"subject", subject}}));
  std::vector<std::string> names;
  auto it = reply.find("streams");
  if (it != reply.end() && it->is_array()) {
    for (const auto& n : *it) {
      if (n.is_string()) names.push_back(n.get<std::string>());
    }
  }
  return names;
}

double Rate(int64_t messages, int64_t took_us) {
  return static_cast<double>(messages) * 1e6 / static_cast<double>(std::max<int64_t>(took_us, 1));
}

// REQUIRES: !v.empty().
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[(v.size() - 1) / 2];
}

}  // namespace

Result<std::vector<PerformanceMetric>> NatsDriver::MeasurePerformance(const ComponentSpec& c,
                                                                      DriverContext& ctx) {
  const int64_t messages = ctx.spec != nullptr ? ctx.spec->performance.nats_messages : 1000;
  const int64_t size = ctx.spec != nullptr ? ctx.spec->performance.nats_message_size : 256;
  BACKSTOP_ASSIGN_OR_RETURN(NatsSettings settings, ReadSettings(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, Connect(settings));
  const std::string subject = PrivateSubject();
  BACKSTOP_ASSIGN_OR_RETURN(auto capturing, StreamsCapturing(*conn, subject));
  if (!capturing.empty()) {
    std::string list;
    for (const auto& s : capturing) list += (list.empty() ? "" : ", ") + s;
    return Status::FailedPrecondition("not measured: stream(s) " + list + " capture subject " +
                                      subject +
                                      ", so the benchmark's messages would be stored with the "
                                      "user's data");
  }

  natsSubscription* sub = nullptr;
  natsStatus s = natsConnection_SubscribeSync(&sub, conn->raw(), subject.c_str());
  if (s != NATS_OK) return NatsCallError("subscribing to " + subject, s);
  struct SubGuard {
    natsSubscription* sub;
    ~SubGuard() {
      natsSubscription_Unsubscribe(sub);
      natsSubscription_Destroy(sub);
    }
  } guard{sub};
  // Room for every message: the default limit (65,536) would drop some of a
  // larger benchmark as a slow consumer.
  const int64_t kIntMax = 1 << 30;
  int msg_limit = static_cast<int>(std::min(std::max<int64_t>(messages, 65536), kIntMax));
  int byte_limit =
      static_cast<int>(std::min(std::max<int64_t>(messages * (size + 64), 64 << 20), kIntMax));
  s = natsSubscription_SetPendingLimits(sub, msg_limit, byte_limit);
  if (s != NATS_OK) return NatsCallError("setting the pending limits of " + subject, s);
  // The server knows of the subscription before the first message goes out.
  s = natsConnection_FlushTimeout(conn->raw(), kFlushTimeoutMs);
  if (s != NATS_OK) return NatsCallError("flushing the subscription to " + subject, s);

  // Each run is over in milliseconds, where one scheduling hiccup halves a
  // rate: the benchmark runs performance.samples times and the medians count.
  Env* env = ctx.env != nullptr ? ctx.env : Env::Default();
  const int runs = ctx.spec != nullptr ? ctx.spec->performance.samples : 20;
  const std::string payload(static_cast<size_t>(size), 'b');
  std::vector<double> publish_rates, consume_rates;
  for (int run = 0; run < runs; ++run) {
    int64_t t0 = env->clock()->NowMicros();
    for (int64_t i = 0; i < messages; ++i) {
      s = natsConnection_Publish(conn->raw(), subject.c_str(), payload.data(),
                                 static_cast<int>(payload.size()));
      if (s != NATS_OK) return NatsCallError("publishing to " + subject, s);
    }
    s = natsConnection_FlushTimeout(conn->raw(), kFlushTimeoutMs);
    if (s != NATS_OK) return NatsCallError("flushing the messages published to " + subject, s);
    int64_t published_us = env->clock()->NowMicros() - t0;
    for (int64_t i = 0; i < messages; ++i) {
      natsMsg* msg = nullptr;
      s = natsSubscription_NextMsg(&msg, sub, kReceiveTimeoutMs);
      if (s != NATS_OK) {
        return NatsCallError("receiving the benchmark's messages on " + subject + " (" +
                                 std::to_string(i) + " of " + std::to_string(messages) +
                                 " arrived)",
                             s);
      }
      natsMsg_Destroy(msg);
    }
    int64_t consumed_us = env->clock()->NowMicros() - t0;
    publish_rates.push_back(Rate(messages, published_us));
    consume_rates.push_back(Rate(messages, consumed_us));
  }
  return std::vector<PerformanceMetric>{
      {"publish rate", PerformanceMetric::Kind::kThroughput, Median(std::move(publish_rates))},
      {"consume rate", PerformanceMetric::Kind::kThroughput, Median(std::move(consume_rates))}};
}

}  // namespace backstop::nats
