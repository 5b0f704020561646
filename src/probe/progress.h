// ProgressFn: how a long step reports its progress to whoever runs it (a
// health gate's attempts, "pg_restore: 40%"). Probes and drivers take one.
//
// Thread-safety: called on the thread doing the step.
#pragma once

#include <functional>
#include <string>

namespace backstop {

// Receives progress lines of long steps ("pg_restore: 40%"). May be empty.
using ProgressFn = std::function<void(const std::string& line)>;

}  // namespace backstop
