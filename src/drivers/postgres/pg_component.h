// A postgres component as the driver works with it: its settings loaded and
// checked, connections to its databases, its scratch directory, and the
// PostgreSQL client programs (pg_dump, pg_restore) run for it with the
// password kept out of their command lines and of every message.
//
// Thread-safety: free functions; Loaded is a value. RunTool and RestoreDump
// run child processes through the context's Env.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "drivers/driver.h"
#include "drivers/postgres/pg_catalog.h"
#include "drivers/postgres/pg_conn.h"
#include "spec/spec.h"

namespace backstop::postgres {

struct Loaded {
  PgSettings settings;
  ConnParams params;
  const std::string& db() const { return params.dbname(); }
};

Result<Loaded> Load(const ComponentSpec& c);

Result<std::unique_ptr<PgConn>> ConnectTo(const Loaded& l, const std::string& dbname);

Result<std::unique_ptr<PgConn>> ConnectAdmin(const Loaded& l);

int64_t NowMs(const DriverContext& ctx);

std::string WorkDir(const DriverContext& ctx, const ComponentSpec& c);

std::string Sanitized(const std::string& id);

std::string BinDir(const PgSettings& s, int server_version_num, Env* env);

std::string Tool(const std::string& bin_dir, const std::string& name);

std::string LastLines(const std::string& text, int n);

Status RunTool(const DriverContext& ctx, const Loaded& l, std::vector<std::string> argv,
               const std::string& what, const std::map<std::string, std::string>& extra_env = {});

// pg_restore's sessions commit without waiting for the WAL flush: the target
// is a shadow or staged database nobody uses until it is verified, and a
// crash before that rebuilds it, so a lost commit costs nothing. (A
// conninfo `options` setting takes precedence over PGOPTIONS.)
Status RestoreDump(const DriverContext& ctx, const Loaded& l, const std::string& bin_dir,
                   const std::string& dump_dir, const std::string& target);

}  // namespace backstop::postgres
