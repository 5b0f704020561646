// The demo service's gRPC health server. See demo_grpc.h.
#include "demo_grpc.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <mutex>
#include <thread>

struct DemoGrpcHealth::Impl {
  std::mutex mu;
  std::unique_ptr<grpc::Server> server;  // null once stopped
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::thread cq_thread;
};

DemoGrpcHealth::DemoGrpcHealth(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DemoGrpcHealth::~DemoGrpcHealth() { Stop(); }

std::unique_ptr<DemoGrpcHealth> DemoGrpcHealth::Start(const std::string& host, int port,
                                                      const std::string& service_name, bool serving,
                                                      std::string* error) {
  const std::string address =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  grpc::EnableDefaultHealthCheckService(true);
  auto impl = std::make_unique<Impl>();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound_port);
  // The health service is the only one: grpc++ then insists on a completion
  // queue that someone polls (it answers calls to unknown methods).
  impl->cq = builder.AddCompletionQueue();
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || bound_port == 0) {
    *error = "cannot serve gRPC on " + address + " (port in use, or a bad address?)";
    if (impl->server != nullptr) impl->server->Shutdown();
    impl->cq->Shutdown();
    void* tag;
    bool ok;
    while (impl->cq->Next(&tag, &ok)) {
    }
    return nullptr;
  }
  impl->cq_thread = std::thread([cq = impl->cq.get()] {
    void* tag;
    bool ok;
    while (cq->Next(&tag, &ok)) {
    }
  });
  grpc::HealthCheckServiceInterface* health = impl->server->GetHealthCheckService();
  if (!service_name.empty()) health->SetServingStatus(service_name, serving);
  health->SetServingStatus(serving);
  return std::unique_ptr<DemoGrpcHealth>(new DemoGrpcHealth(std::move(impl)));
}

void DemoGrpcHealth::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->server != nullptr) impl_->server->GetHealthCheckService()->SetServingStatus(serving);
}

void DemoGrpcHealth::Stop() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->server == nullptr) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  impl_->server->Wait();
  impl_->cq->Shutdown();
  impl_->cq_thread.join();
  impl_->server.reset();
}
