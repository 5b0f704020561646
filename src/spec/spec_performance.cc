// The performance section: how a restore point's performance baseline is
// measured and how far the present may stray from it (seed 4.3):
//   performance:
//     samples: 20
//     tolerance: {latency: 50%, query: 50%, throughput: 30%}
//     min_change: 5ms
//     max_latency: 1s
//     nats: {messages: 1000, size: 256}
#include <algorithm>
#include <string>
#include <vector>

#include "spec/spec_parser.h"

namespace backstop::spec_internal {

namespace {

const std::vector<std::string> kPerformanceKeys = {"samples", "tolerance", "min_change",
                                                   "max_latency", "nats"};
const std::vector<std::string> kToleranceKeys = {"latency", "query", "throughput"};
const std::vector<std::string> kNatsKeys = {"messages", "size"};
constexpr int64_t kMaxSamples = 1000;
constexpr int64_t kMaxMessages = 1000000;
constexpr int64_t kMaxMessageSize = 1 << 20;  // nats-server's default max_payload

}  // namespace

// A percentage from 0% to `max_pct` ("50%"); latency may be allowed to grow
// by more than 100%, throughput cannot fall by more than 100%.
std::optional<double> Parser::Tolerance(const Entry& e, const std::string& path, double max_pct) {
  const std::string expected =
      "a percentage from 0% to " + std::to_string(static_cast<int>(max_pct)) + "% such as 50%";
  auto s = Str(e, path, expected);
  if (!s) return std::nullopt;
  std::string text = *s;
  bool ok = text.size() >= 2 && text.back() == '%';
  double v = 0;
  if (ok) {
    std::string num = text.substr(0, text.size() - 1);
    ok = !num.empty() && num.find_first_not_of("0123456789.") == std::string::npos &&
         std::count(num.begin(), num.end(), '.') <= 1 && num != ".";
    if (ok) v = std::stod(num);
  }
  if (!ok) {
    Err(At(e), path, "bad percentage '" + text + "'", expected);
    return std::nullopt;
  }
  if (v > max_pct) {
    Err(At(e), path, text + " is out of range", expected);
    return std::nullopt;
  }
  return v;
}

void Parser::ParsePerformance(const Entry& e, Spec* spec) {
  MapFields f;
  if (!ReadMap(e.value, At(e), "performance",
               "a map {samples, tolerance: {latency, query, throughput}, min_change, "
               "max_latency, nats: {messages, size}}",
               &f)) {
    return;
  }
  PerformanceSpec& p = spec->performance;
  p.pos = Pos(At(e));
  if (Entry* n = f.Take("samples")) {
    if (auto v = Int(*n, "performance.samples", 1, kMaxSamples,
                     "a count from 1 to " + std::to_string(kMaxSamples))) {
      p.samples = static_cast<int>(*v);
    }
  }
  if (Entry* t = f.Take("tolerance")) {
    MapFields tf;
    if (ReadMap(t->value, At(*t), "performance.tolerance",
                "a map of percentages {latency: 50%, query: 50%, throughput: 30%}", &tf)) {
      if (Entry* n = tf.Take("latency")) {
        if (auto v = Tolerance(*n, "performance.tolerance.latency", 1000)) {
          p.latency_tolerance_pct = *v;
        }
      }
      if (Entry* n = tf.Take("query")) {
        if (auto v = Tolerance(*n, "performance.tolerance.query", 1000)) p.query_tolerance_pct = *v;
      }
      if (Entry* n = tf.Take("throughput")) {
        if (auto v = Tolerance(*n, "performance.tolerance.throughput", 100)) {
          p.throughput_tolerance_pct = *v;
        }
      }
      RejectUnknown(tf, kToleranceKeys);
    }
  }
  if (Entry* n = f.Take("min_change")) {
    if (auto v = Duration(*n, "performance.min_change", /*positive=*/false)) p.min_change_ms = *v;
  }
  if (Entry* n = f.Take("max_latency")) {
    if (auto v = Duration(*n, "performance.max_latency", /*positive=*/false)) p.max_latency_ms = *v;
  }
  if (Entry* n = f.Take("nats")) {
    MapFields nf;
    if (ReadMap(n->value, At(*n), "performance.nats", "a map {messages: 1000, size: 256}", &nf)) {
      if (Entry* m = nf.Take("messages")) {
        if (auto v = Int(*m, "performance.nats.messages", 1, kMaxMessages,
                         "a count from 1 to " + std::to_string(kMaxMessages))) {
          p.nats_messages = *v;
        }
      }
      if (Entry* m = nf.Take("size")) {
        if (auto v = Int(*m, "performance.nats.size", 0, kMaxMessageSize,
                         "a size in bytes from 0 to " + std::to_string(kMaxMessageSize))) {
          p.nats_message_size = *v;
        }
      }
      RejectUnknown(nf, kNatsKeys);
    }
  }
  RejectUnknown(f, kPerformanceKeys);
}

}  // namespace backstop::spec_internal
