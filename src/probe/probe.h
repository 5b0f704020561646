// Health probes: HTTP (libcurl; status and latency), TCP connect, exec (exit
// code) and gRPC (grpc.health.v1, provided by the optional gRPC library).
//
// RunProbe performs one attempt, bounded by probe.timeout_ms; a timeout is a
// failure, never "no data". WaitHealthy gates a start: it polls until the
// probe passes or the start period runs out.
//
// Thread-safety: RunProbe may be called from several threads at once.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "base/env.h"
#include "probe/health.h"
#include "probe/progress.h"
#include "spec/spec.h"

namespace backstop {

HealthResult RunProbe(const ProbeSpec& probe, Env* env);

// Polls `probe` every `poll_ms` (at least one attempt) until it passes or
// probe.start_period_ms has passed since the call. Returns the last result;
// `attempts` (if not null) receives how many probes ran.
HealthResult WaitHealthy(const ProbeSpec& probe, Env* env, int64_t poll_ms, int* attempts,
                         const ProgressFn& progress);

// Where a tcp, http or grpc probe connects: its host and port (an http URL
// without a port: 80, https: 443). nullopt for exec probes and targets that
// cannot be parsed (the probe itself reports those).
struct ProbeEndpoint {
  std::string host;  // as written: "127.0.0.1", "localhost", "::1"
  int port = 0;
};
std::optional<ProbeEndpoint> ProbeEndpointOf(const ProbeSpec& probe);

// The gRPC probe lives in its own library (heavy dependency); it registers
// itself here at start-up. Without it a grpc probe reports kUnknown.
using GrpcProbeFn = std::function<HealthResult(const ProbeSpec& probe)>;
void SetGrpcProbe(GrpcProbeFn fn);

}  // namespace backstop
