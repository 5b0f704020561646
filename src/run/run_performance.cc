// RunEngine::VerifyPerformanceAfterRollback: seed 4.3 as a rollback's last
// verification (perf/verify.h does the measuring and comparing).
#include "base/output.h"
#include "perf/verify.h"
#include "run/run.h"

namespace backstop {

void RunEngine::VerifyPerformanceAfterRollback(const RunRecord& run, nlohmann::json* summary) {
  out_.Line("          verifying performance against the baselines");
  auto verdict = VerifyPerformance(
      spec_, store_, [this](const ComponentSpec& c) { return DriverFor(c); }, Context(run.id),
      run.restore_point);
  if (!verdict.ok()) {
    // The rollback itself is verified: say why performance could not be checked.
    (*summary)["performance"] = {
        {"ok", false},
        {"summary", "performance not verified: " + verdict.status().message()},
        {"rows", nlohmann::json::array()}};
    out_.Line(std::string("          ") + Output::Fail() +
              " performance not verified: " + verdict.status().message());
    return;
  }
  (*summary)["performance"] = verdict->ToJson();
  if (verdict->ok()) {
    out_.Line(std::string("          ") + Output::Ok() + " " + verdict->Summary());
    return;
  }
  // Loud: the table, then the verdict, in the run's output (and in the
  // run.finished event and the checklist, from the summary).
  std::string table = RenderPerformanceTable(*verdict);
  size_t start = 0;
  while (start < table.size()) {
    size_t end = table.find('\n', start);
    if (end == std::string::npos) end = table.size();
    out_.Line("          " + table.substr(start, end - start));
    start = end + 1;
  }
  out_.Line(std::string("          ") + Output::Fail() + " " + verdict->Summary() +
            " — the rollback stands; look at the components named above");
}

}  // namespace backstop
