// The comparison of a measurement with its baseline: exact values at and
// around each tolerance, the absolute floor and ceiling, missing baselines.
#include <gtest/gtest.h>

#include "perf/compare.h"

namespace backstop {
namespace {

using Kind = PerformanceMetric::Kind;

PerformanceSpec Tolerances() {
  PerformanceSpec s;  // latency 50%, query 50%, throughput 30%, min_change 5 ms
  return s;
}

TEST(PercentileMetrics, NearestRank) {
  std::vector<double> samples;
  for (int i = 20; i >= 1; --i) samples.push_back(i);  // 1..20, unsorted
  auto m = PercentileMetrics("probe", Kind::kLatency, samples);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].name, "probe p50");
  EXPECT_EQ(m[0].value, 10);
  EXPECT_EQ(m[1].name, "probe p95");
  EXPECT_EQ(m[1].value, 19);
  auto one = PercentileMetrics("query", Kind::kQuery, {7});
  EXPECT_EQ(one[0].value, 7);
  EXPECT_EQ(one[1].value, 7);
}

TEST(CompareMetric, LatencyAtTheToleranceIsOkAboveItDegraded) {
  auto spec = Tolerances();
  auto at = CompareMetric(spec, "webui", {"probe p95", Kind::kLatency, 30}, 20.0);
  EXPECT_EQ(at.status, MetricStatus::kOk);
  EXPECT_DOUBLE_EQ(*at.ratio, 1.5);
  EXPECT_EQ(at.tolerance_pct, 50);
  auto above = CompareMetric(spec, "webui", {"probe p95", Kind::kLatency, 30.5}, 20.0);
  EXPECT_EQ(above.status, MetricStatus::kDegraded);
  EXPECT_EQ(above.detail, "30.50 ms is above 30.00 ms (the baseline +50%)");
}

TEST(CompareMetric, SmallAbsoluteChangesAreNoise) {
  auto spec = Tolerances();
  // 0.4 ms -> 4 ms is ten times the baseline but 3.6 ms more: below min_change.
  auto r = CompareMetric(spec, "webui", {"probe p50", Kind::kLatency, 4}, 0.4);
  EXPECT_EQ(r.status, MetricStatus::kOk);
  EXPECT_DOUBLE_EQ(*r.ratio, 10);
  auto r2 = CompareMetric(spec, "webui", {"probe p50", Kind::kLatency, 5.4}, 0.4);
  EXPECT_EQ(r2.status, MetricStatus::kDegraded);
}

TEST(CompareMetric, QueryUsesItsOwnTolerance) {
  auto spec = Tolerances();
  spec.query_tolerance_pct = 100;
  EXPECT_EQ(CompareMetric(spec, "db", {"query p95", Kind::kQuery, 40}, 20.0).status,
            MetricStatus::kOk);
  EXPECT_EQ(CompareMetric(spec, "db", {"query p95", Kind::kQuery, 46}, 20.0).status,
            MetricStatus::kDegraded);
}

TEST(CompareMetric, ThroughputMayFallByItsTolerance) {
  auto spec = Tolerances();
  auto at = CompareMetric(spec, "nats", {"publish rate", Kind::kThroughput, 70000}, 100000.0);
  EXPECT_EQ(at.status, MetricStatus::kOk);
  EXPECT_DOUBLE_EQ(*at.ratio, 0.7);
  auto below = CompareMetric(spec, "nats", {"publish rate", Kind::kThroughput, 69999}, 100000.0);
  EXPECT_EQ(below.status, MetricStatus::kDegraded);
  EXPECT_EQ(below.detail, "69999 msg/s is below 70000 msg/s (the baseline -30%)");
  // Faster is never degraded.
  EXPECT_EQ(CompareMetric(spec, "nats", {"publish rate", Kind::kThroughput, 1e7}, 1e5).status,
            MetricStatus::kOk);
}

TEST(CompareMetric, MaxLatencyAppliesWithOrWithoutBaseline) {
  auto spec = Tolerances();
  spec.max_latency_ms = 1000;
  auto r = CompareMetric(spec, "orchestrator", {"probe p95", Kind::kLatency, 1200}, 1100.0);
  EXPECT_EQ(r.status, MetricStatus::kDegraded);
  EXPECT_EQ(r.detail, "1200.00 ms is above max_latency (1000.00 ms)");
  auto none =
      CompareMetric(spec, "orchestrator", {"probe p95", Kind::kLatency, 1000.5}, std::nullopt);
  EXPECT_EQ(none.status, MetricStatus::kDegraded);
  auto fine = CompareMetric(spec, "orchestrator", {"probe p95", Kind::kLatency, 999}, std::nullopt,
                            "no baseline recorded in restore point rp-1");
  EXPECT_EQ(fine.status, MetricStatus::kNoBaseline);
  EXPECT_EQ(fine.detail, "no baseline recorded in restore point rp-1");
  EXPECT_FALSE(fine.ratio.has_value());
}

TEST(CompareComponent, OlderRestorePointSaysNoBaselineAndIsOk) {
  Measurement now{{{"probe p50", Kind::kLatency, 2}, {"probe p95", Kind::kLatency, 3}}, ""};
  auto rows = CompareComponent(Tolerances(), "webui", now, std::nullopt, "restore point rp-old");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].status, MetricStatus::kNoBaseline);
  EXPECT_EQ(rows[0].detail, "no baseline recorded in restore point rp-old");
  PerformanceVerdict v{rows};
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.Summary(), "performance within the baselines (0 of 2 metrics compared)");
}

TEST(CompareComponent, MissingBaselineKeepsItsReason) {
  Measurement now{{{"query p50", Kind::kQuery, 2}}, ""};
  Measurement base{{}, "connecting to database shop: refused"};
  auto rows = CompareComponent(Tolerances(), "db", now, base, "restore point rp-1");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, MetricStatus::kNoBaseline);
  EXPECT_EQ(rows[0].detail,
            "no baseline in restore point rp-1: connecting to database shop: "
            "refused");
}

TEST(CompareComponent, FailedAndSkippedMeasurements) {
  auto failed = CompareComponent(Tolerances(), "webui", Measurement{{}, "probe did not pass"},
                                 std::nullopt, "x");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].status, MetricStatus::kFailed);
  auto skipped = CompareComponent(Tolerances(), "nats",
                                  Measurement{{}, "not measured: stream(s) ALL capture ..."},
                                  std::nullopt, "x");
  EXPECT_EQ(skipped[0].status, MetricStatus::kSkipped);
  EXPECT_TRUE(CompareComponent(Tolerances(), "config", Measurement{}, std::nullopt, "x").empty());
  PerformanceVerdict v;
  v.rows = failed;
  v.rows.insert(v.rows.end(), skipped.begin(), skipped.end());
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.Problems().size(), 1u);
}

TEST(PerformanceVerdict, SummaryNamesTheDegradedMetricAndRoundTrips) {
  Measurement now{{{"probe p95", Kind::kLatency, 80}}, ""};
  Measurement base{{{"probe p95", Kind::kLatency, 20}}, ""};
  PerformanceVerdict v{CompareComponent(Tolerances(), "webui", now, base, "restore point rp-1")};
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.Summary(),
            "performance DEGRADED: webui probe p95 degraded at 4.00× the baseline (80.00 ms is "
            "above 30.00 ms (the baseline +50%))");
  nlohmann::json stored = v.ToJson();
  EXPECT_EQ(stored["rows"][0]["status"], "degraded");  // the word, as before the enum
  auto back = PerformanceVerdict::FromJson(stored, "run run-1's summary");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->rows.size(), 1u);
  EXPECT_EQ(back->rows[0].status, MetricStatus::kDegraded);
  EXPECT_DOUBLE_EQ(*back->rows[0].baseline, 20);
  EXPECT_EQ(back->Summary(), v.Summary());
  EXPECT_NE(RenderPerformanceTable(v).find("4.00×"), std::string::npos);
}

TEST(PerformanceVerdict, AnUnknownStoredStatusIsCorruptionNamingTheRow) {
  nlohmann::json stored = {{"rows",
                            {{{"component", "webui"}, {"metric", "probe p95"}, {"status", "ok"}},
                             {{"component", "db"}, {"metric", "query p95"}, {"status", "slow"}}}}};
  auto back = PerformanceVerdict::FromJson(stored, "run run-1's summary");
  EXPECT_EQ(back.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(back.status().message(),
            "run run-1's summary: performance row 2 (db): status 'slow' is not one Backstop "
            "writes (one of ok, degraded, no baseline, failed, skipped)");
}

TEST(Baseline, StoredFormRoundTrips) {
  Measurement m{{{"publish rate", Kind::kThroughput, 123456.5}}, ""};
  nlohmann::json entry = {{"performance", BaselineToJson(m, 20)}};
  auto back = BaselineFromEntry(entry);
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->metrics.size(), 1u);
  EXPECT_EQ(back->metrics[0].kind, Kind::kThroughput);
  EXPECT_EQ(back->metrics[0].value, 123456.5);
  EXPECT_FALSE(BaselineFromEntry(nlohmann::json{{"release", "v1"}}).has_value());
  EXPECT_TRUE(BaselineToJson(Measurement{}, 20).is_null());
  auto missing = BaselineFromEntry({{"performance", BaselineToJson({{}, "refused"}, 20)}});
  EXPECT_EQ(missing->missing, "refused");
}

}  // namespace
}  // namespace backstop
