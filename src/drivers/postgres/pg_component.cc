#include "drivers/postgres/pg_component.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace backstop::postgres {

Result<Loaded> Load(const ComponentSpec& c) {
  auto s = ParsePgSettings(c.settings);
  if (!s.ok()) return s.status().WithContext("component " + c.name);
  auto p = ConnParams::Parse(s->connection);
  if (!p.ok()) return p.status().WithContext("component " + c.name);
  if (s->admin_dbname == p->dbname()) {
    return Status::InvalidArgument(
        "component " + c.name + ": admin_dbname must name another database than the live one (" +
        p->dbname() + "): a database cannot be renamed from a session inside it");
  }
  return Loaded{std::move(s).value(), std::move(p).value()};
}

Result<std::unique_ptr<PgConn>> ConnectTo(const Loaded& l, const std::string& dbname) {
  return PgConn::Connect(l.params, dbname, l.settings.connect_timeout_ms);
}

Result<std::unique_ptr<PgConn>> ConnectAdmin(const Loaded& l) {
  return ConnectTo(l, l.settings.admin_dbname);
}

int64_t NowMs(const DriverContext& ctx) { return ctx.env->clock()->NowMicros() / 1000; }

std::string WorkDir(const DriverContext& ctx, const ComponentSpec& c) {
  if (!ctx.state_dir.empty()) return JoinPath(ctx.state_dir, "components/" + c.name);
  const char* t = std::getenv("TMPDIR");
  return JoinPath(t && *t ? t : "/tmp", "backstop-pg-" + c.name);
}

std::string Sanitized(const std::string& id) {
  std::string out;
  for (char ch : id) out += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return out;
}

std::string BinDir(const PgSettings& s, int server_version_num, Env* env) {
  if (!s.bin_dir.empty()) return s.bin_dir;
  std::string dir = "/usr/lib/postgresql/" + std::to_string(server_version_num / 10000) + "/bin";
  if (env->fs()->Exists(JoinPath(dir, "pg_dump"))) return dir;
  return "";  // PATH
}

std::string Tool(const std::string& bin_dir, const std::string& name) {
  return bin_dir.empty() ? name : JoinPath(bin_dir, name);
}

std::string LastLines(const std::string& text, int n) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::string out;
  size_t from = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

Status RunTool(const DriverContext& ctx, const Loaded& l, std::vector<std::string> argv,
               const std::string& what, const std::map<std::string, std::string>& extra_env) {
  ProcessOptions o;
  o.argv = std::move(argv);
  o.env = l.params.ChildEnv(l.settings.connect_timeout_ms);
  for (const auto& [k, v] : extra_env) o.env[k] = v;
  auto r = ctx.env->processes()->Run(o);
  if (!r.ok())
    return Status::IOError(what + ": cannot start " + o.argv[0] + ": " +
                           l.params.Mask(r.status().message()));
  if (!r->success()) {
    std::string err = LastLines(r->err, 8);
    if (err.empty()) err = LastLines(r->out, 4);
    std::string how = r->timed_out     ? "timed out"
                      : r->term_signal ? "killed by signal " + std::to_string(r->term_signal)
                                       : "exit " + std::to_string(r->exit_code);
    return Status::FailedPrecondition(what + " failed (" + how + "): " + l.params.Mask(err));
  }
  return Status::OK();
}

Status RestoreDump(const DriverContext& ctx, const Loaded& l, const std::string& bin_dir,
                   const std::string& dump_dir, const std::string& target) {
  return RunTool(ctx, l,
                 {Tool(bin_dir, "pg_restore"), "--format=directory",
                  "--jobs=" + std::to_string(l.settings.jobs), "--exit-on-error", "--no-password",
                  "--dbname=" + l.params.ForCommandLine(target), dump_dir},
                 "pg_restore into database " + target,
                 {{"PGOPTIONS", "-c synchronous_commit=off"}});
}

}  // namespace backstop::postgres
