// The gRPC health probe: one grpc.health.v1 Health/Check call, read the way
// grpc_health_probe reads it.
//
//   response SERVING                       -> pass
//   NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN  -> fail, detail starts "NOT_SERVING"
//   RPC NOT_FOUND (service not registered) -> fail, "service 'x' not found (NOT_FOUND)"
//   UNAVAILABLE (refused, no server)       -> fail, "unavailable: <why>"
//   DEADLINE_EXCEEDED                      -> fail, "timed out after 10 s"
//   UNIMPLEMENTED (no health service)      -> fail, says the server lacks grpc.health.v1
//
// probe.target is host:port (a gRPC target name, "[::1]:50051" included),
// probe.grpc_service the service to ask about ("" = the server as a whole),
// probe.timeout_ms the deadline of the whole attempt, connecting included.
// Plain-text HTTP/2 (insecure credentials): meant for loopback and private
// networks, like grpc_health_probe without -tls.
//
// Channels are cached per target and shared by all callers, so a watcher
// probing every few seconds keeps one connection per target instead of
// reconnecting each time. A cached channel that lost its server is replaced
// by a fresh one (no reconnect backoff to wait out), so the first probe after
// a server restart already sees the new server.
//
// Thread-safety: everything here may be called from any number of threads.
// This is the only part of Backstop that includes grpc++; it lives in its own
// library (backstop_grpc) so the core builds without it.
#pragma once

#include <cstddef>

#include "drivers/driver.h"
#include "spec/spec.h"

namespace backstop::grpc_probe {

// One attempt, bounded by probe.timeout_ms (10 s if not positive). REQUIRES:
// probe.type is kGrpc (the type itself is not checked).
HealthResult CheckGrpcHealth(const ProbeSpec& probe);

// Makes RunProbe (src/probe.h) answer grpc probes with CheckGrpcHealth.
// Call once at start-up, before probes run; calling it again is harmless.
void RegisterGrpcProbe();

// For tests: how many channels have been created since the process started
// (a fresh channel means a fresh connection).
size_t ChannelsCreatedForTesting();

}  // namespace backstop::grpc_probe
