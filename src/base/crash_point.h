// Crash points: named places inside a step where a test can kill the process
// with SIGKILL, to prove that a crash in the middle of a step (between a
// delete and a restore, between a spawn and its record) is recovered by
// `--resume` exactly as an uninterrupted run would have ended.
//
//   BACKSTOP_CRASH_POINT_FOR_TEST=NAME     kill at the first time NAME is reached
//   BACKSTOP_CRASH_POINT_FOR_TEST=NAME#N   kill at the N-th time (1-based)
//   BACKSTOP_CRASH_POINTS_LOG_FOR_TEST=F   append every point reached to F, one
//                                          name a line, so a test can sweep them
//
// Names are "<driver or layer>.<where>", e.g. "nats.after-delete". They are
// cheap when neither variable is set (one getenv each, cached).
//
// Thread-safety: safe to call from any thread.
#pragma once

#include <string_view>

namespace backstop {

void CrashPointForTest(std::string_view name);

}  // namespace backstop
