#include "cli/cli_common.h"

#include <future>

#include "base/env.h"
#include "base/exit_code.h"
#include "store/state_dir.h"

namespace backstop {

std::string HealthWord(const HealthResult& h) {
  switch (h.state) {
    case HealthResult::State::kPass:
      return "healthy";
    case HealthResult::State::kFail:
      return "unhealthy";
    default:
      return "unknown";
  }
}

Result<std::unique_ptr<Environment>> OpenEnvironment(const GlobalOptions& g, Output& out) {
  auto e = std::make_unique<Environment>();
  BACKSTOP_ASSIGN_OR_RETURN(e->spec, LoadSpec(g.spec_path, DriverRegistry::Global()));
  Env* env = Env::Default();
  BACKSTOP_ASSIGN_OR_RETURN(StateDirReport dir,
                            OpenStateDir(env, e->spec.state_dir, e->spec.store_path));
  if (dir.tightened > 0) out.Error("backstop: " + dir.Message());
  BACKSTOP_ASSIGN_OR_RETURN(e->store, Store::Open(env, e->spec.store_path));
  BACKSTOP_ASSIGN_OR_RETURN(e->state, StateDb::Open(JoinPath(e->spec.state_dir, "state.db")));
  e->engine = std::make_unique<RunEngine>(env, e->spec, *e->store, *e->state,
                                          DriverRegistry::Global(), out);
  return e;
}

int Fail(Output& out, const Status& st) {
  out.Error("backstop: " + st.message());
  if (out.json()) {
    out.Json({{"ok", false}, {"error", st.message()}, {"code", Status::CodeName(st.code())}});
  }
  return ExitCodeFor(st);
}

std::map<std::string, HealthResult> ProbeAll(Environment& e,
                                             const std::vector<std::string>& names) {
  std::map<std::string, std::future<HealthResult>> pending;
  std::map<std::string, HealthResult> out;
  for (const auto& name : names) {
    const ComponentSpec* c = e.spec.Find(name);
    auto driver = e.engine->DriverFor(*c);
    if (!driver.ok()) {
      HealthResult h;
      h.state = HealthResult::State::kFail;
      h.detail = driver.status().message();
      out[name] = h;
      continue;
    }
    Driver* d = *driver;
    pending[name] = std::async(std::launch::async, [&e, c, d] {
      DriverContext ctx = e.engine->Context();
      return d->Health(*c, ctx);
    });
  }
  for (auto& [name, f] : pending) out[name] = f.get();
  return out;
}

}  // namespace backstop
