// A stand-in for the Watcher behind the API in the API's tests (api_test.cc,
// dashboard_test.cc): canned answers, counts of what it was asked.
//
// Thread-safety: called from the server's worker threads; the counters are
// atomic, the last request under `mu`.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "watch/api.h"

namespace backstop {

class FakeBackend : public ApiBackend {
 public:
  nlohmann::json GetStatus() override { return {{"paused", paused.load()}, {"components", 2}}; }
  ApiReply GetComponents() override { return {200, {{"components", nlohmann::json::array()}}}; }
  ApiReply GetRestorePoints() override {
    return {200, {{"restore_points", nlohmann::json::array()}}};
  }
  ApiReply VerifyRestorePoint(const std::string& id) override {
    ++verifies;
    return {200, {{"id", id}, {"ok", true}}};
  }
  ApiReply GetRuns(int limit, int offset) override {
    last_limit = limit;
    last_offset = offset;
    return {200, {{"runs", nlohmann::json::array({{{"id", "run-1"}}})}}};
  }
  ApiReply GetRun(const std::string& id) override {
    if (id == "run-1") return {200, {{"id", "run-1"}}};
    return {404, {{"error", "no run " + id}, {"code", "not_found"}}};
  }
  ApiReply RequestRollback(const nlohmann::json& body, const std::string& actor) override {
    ++rollbacks;
    std::lock_guard<std::mutex> lock(mu);
    last_body = body;
    last_actor = actor;
    return {202, {{"accepted", true}, {"run", "run-2"}}};
  }
  ApiReply SetPaused(bool p, const std::string& reason, const std::string&) override {
    ++pause_calls;
    paused = p;
    std::lock_guard<std::mutex> lock(mu);
    last_reason = reason;
    return {200, {{"paused", p}}};
  }
  ApiReply PlanRollback(const nlohmann::json& body) override {
    ++plans;
    return {200, {{"describe", "1. stop webui"}, {"request", body}, {"protected", false}}};
  }
  std::string MetricsText() override {
    WatchMetrics m;
    m.paused = paused.load();
    return RenderMetrics(m);
  }

  std::atomic<int> rollbacks{0}, pause_calls{0}, plans{0}, verifies{0};
  std::atomic<bool> paused{false};
  std::atomic<int> last_limit{0}, last_offset{0};
  std::mutex mu;
  nlohmann::json last_body;
  std::string last_actor, last_reason;
};

}  // namespace backstop
