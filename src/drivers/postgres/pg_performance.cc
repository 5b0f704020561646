// PostgresDriver::MeasurePerformance: the seed's `time psql -c "SELECT
// COUNT(*) FROM tasks"`, as the component's `baseline_query` run
// performance.samples times on one connection, each run in its own
// read-only transaction (so the query cannot write, whatever it calls) with
// a statement_timeout, and rolled back. Only the query itself is timed.
#include <string>
#include <vector>

#include "drivers/postgres/postgres_driver_impl.h"

namespace backstop::postgres {
namespace {

// Long enough for any query a baseline should hold, short enough that a
// database which hangs does not hold up a snapshot or a rollback's last check.
constexpr char kStatementTimeout[] = "30s";

}  // namespace

Result<std::vector<PerformanceMetric>> PostgresDriver::MeasurePerformance(const ComponentSpec& c,
                                                                          DriverContext& ctx) {
  const std::string query = c.settings.value("baseline_query", "");
  if (query.empty()) return std::vector<PerformanceMetric>{};  // nothing the spec asks to time
  BACKSTOP_ASSIGN_OR_RETURN(Loaded l, Load(c));
  BACKSTOP_ASSIGN_OR_RETURN(auto conn, ConnectTo(l, l.db()));
  const int samples = ctx.spec != nullptr ? ctx.spec->performance.samples : 20;
  Env* env = ctx.env;
  std::vector<double> times_ms;
  for (int i = 0; i < samples; ++i) {
    BACKSTOP_RETURN_IF_ERROR(conn->Run("BEGIN TRANSACTION READ ONLY"));
    BACKSTOP_RETURN_IF_ERROR(
        conn->Run(std::string("SET LOCAL statement_timeout = '") + kStatementTimeout + "'"));
    int64_t t0 = env->clock()->NowMicros();
    Status st = conn->Run(query);
    int64_t took_us = env->clock()->NowMicros() - t0;
    Status end = conn->Run("ROLLBACK");
    if (!st.ok()) return st.WithContext("baseline_query of " + c.name);
    BACKSTOP_RETURN_IF_ERROR(end);
    times_ms.push_back(static_cast<double>(took_us) / 1000.0);
  }
  return PercentileMetrics("query", PerformanceMetric::Kind::kQuery, std::move(times_ms));
}

}  // namespace backstop::postgres
