#include "cli/cli_common.h"

#include <future>

#include "base/env.h"
#include "base/exit_code.h"
#include "base/units.h"
#include "store/remote/remote_store_open.h"
#include "store/restore_point.h"
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

void FetchFromRemoteIfMissing(Environment& e, const std::string& selector, Output& out) {
  if (!e.spec.remote_store) return;
  const std::string wanted = selector.empty() ? "latest" : selector;
  auto local = ResolveRestorePointId(*e.store, wanted, /*include_safety=*/true);
  if (local.ok() || !local.status().IsNotFound()) return;
  Env* env = Env::Default();
  auto remote = OpenRemoteStore(env, e.spec, e.store.get());
  if (!remote.ok()) {
    out.Error("warning: the local store has no restore point '" + wanted +
              "' and the remote store cannot be opened: " + remote.status().message());
    return;
  }
  auto rp = (*remote)->Resolve(wanted, /*include_safety=*/true);
  if (!rp.ok()) {
    if (!rp.status().IsNotFound()) {
      out.Error("warning: cannot look in the remote store: " + rp.status().message());
    }
    return;
  }
  out.Line("restore point " + rp->id + " is not in the local store; fetching it from " +
           (*remote)->Describe());
  int64_t t0 = env->clock()->NowMicros();
  auto fetched = (*remote)->Fetch(rp->id, nullptr);
  if (!fetched.ok()) {
    out.Error("warning: fetching " + rp->id + " failed: " + fetched.status().message());
    return;
  }
  out.Line("fetched " + rp->id + ": " + std::to_string(fetched->blobs_fetched) + " blob(s), " +
           FormatBytes(fetched->bytes_fetched) + " in " +
           FormatDurationMs((env->clock()->NowMicros() - t0) / 1000) + ", every one verified");
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
