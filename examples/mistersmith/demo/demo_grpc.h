// The demo service's gRPC side: grpc++'s standard grpc.health.v1 service on a
// port of its own, answering SERVING or NOT_SERVING as the service is told.
// Compiled only when the build has gRPC (-DBACKSTOP_WITH_GRPC=ON, the
// default); this header keeps grpc++ out of demo_service.cc.
//
// Thread-safety: SetServing may be called from any thread.
#pragma once

#include <memory>
#include <string>

class DemoGrpcHealth {
 public:
  // Serves on host:port. The server as a whole ("") and `service_name` (if not
  // empty) answer SERVING when `serving`, NOT_SERVING otherwise; any other
  // service name answers NOT_FOUND. Returns null and sets *error if the
  // server cannot start (port taken, bad address).
  static std::unique_ptr<DemoGrpcHealth> Start(const std::string& host, int port,
                                               const std::string& service_name, bool serving,
                                               std::string* error);
  ~DemoGrpcHealth();  // Stop()
  DemoGrpcHealth(const DemoGrpcHealth&) = delete;
  DemoGrpcHealth& operator=(const DemoGrpcHealth&) = delete;

  void SetServing(bool serving);
  // Stops serving (calls in flight get a second to finish). Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit DemoGrpcHealth(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};
