// DockerClient: a small client of the Docker Engine API (version 1.41) over
// its unix socket, with libcurl (CURLOPT_UNIX_SOCKET_PATH). It speaks to
// Docker and to podman's Docker-compatible service (`podman system service`)
// alike, and never runs a command-line tool.
//
// Only what the container driver needs: inspect a container or an image;
// create, start, stop and remove a container; export an image (GET
// /images/{name}/get, a `docker save` tar) streamed into a WritableFile, and
// load one (POST /images/load) streamed from a SequentialFile, so an image of
// any size never sits in memory.
//
// Errors carry the API's own message ({"message": "..."}) and what was asked:
//   404 -> NotFound, 409 -> FailedPrecondition (a conflict: name taken,
//   which podman 4 answers with 500 and "is already in use",
//   container running), other HTTP errors -> Unavailable (5xx) or
//   InvalidArgument (4xx); a socket that does not answer -> Unavailable
//   naming the socket; a request past its time -> Timeout.
// Start of a running container and stop of a stopped one (HTTP 304) are OK:
// both calls are idempotent.
//
// Timeouts: every request may take `request_timeout_ms` (connect included);
// the streaming calls (export, load) instead fail when no byte moves for
// `stall_timeout_ms`, since a large image may rightly take minutes.
//
// Ownership: the client holds no connection between calls (each call is one
// request); it does not own the files passed to it.
// Thread-safety: the methods are const and keep no state; a client may be
// used from several threads at once.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/env.h"
#include "base/status.h"

namespace backstop::container {

struct DockerClientOptions {
  std::string socket_path;  // e.g. /var/run/docker.sock or <dir>/podman.sock
  int64_t connect_timeout_ms = 5000;
  int64_t request_timeout_ms = 30000;
  int64_t stall_timeout_ms = 60000;  // export and load: no progress for this long fails
};

class DockerClient {
 public:
  explicit DockerClient(DockerClientOptions options);

  const DockerClientOptions& options() const { return options_; }

  // GET /version: the engine's version document ("ApiVersion", "Version", ...).
  Result<nlohmann::json> Version() const;

  // GET /containers/{name}/json. NotFound when no container has that name or id.
  Result<nlohmann::json> InspectContainer(const std::string& name_or_id) const;
  // GET /images/{ref}/json (ref: name:tag, id or sha256:digest). NotFound if absent.
  Result<nlohmann::json> InspectImage(const std::string& ref) const;

  // POST /containers/create?name=NAME with `config` (the API's create body:
  // Image, Cmd, Env, Labels, HostConfig...). Returns the new container's id.
  // FailedPrecondition when the name is taken.
  Result<std::string> CreateContainer(const std::string& name, const nlohmann::json& config) const;
  // POST /containers/{id}/start. OK when it already runs.
  Status StartContainer(const std::string& name_or_id) const;
  // POST /containers/{id}/stop?t=SECONDS (SIGTERM, then SIGKILL after
  // `grace_seconds`). OK when it is already stopped. The request may take
  // the grace period on top of request_timeout_ms.
  Status StopContainer(const std::string& name_or_id, int grace_seconds) const;
  // DELETE /containers/{id}?force=0|1. OK when there is no such container.
  Status RemoveContainer(const std::string& name_or_id, bool force) const;

  // GET /images/json: every image the engine has (Id, RepoTags...).
  Result<nlohmann::json> ListImages() const;
  // POST /containers/{id}/rename?name=NAME. FailedPrecondition when the name is taken.
  Status RenameContainer(const std::string& name_or_id, const std::string& new_name) const;
  // GET /containers/{id}/logs: the last `tail` lines of its stdout and
  // stderr, interleaved as written (the engine's stream framing removed).
  Result<std::string> ContainerLogs(const std::string& name_or_id, int tail) const;

  // GET /images/{ref}/get: the image as a `docker save` tar, appended to
  // `out` as it arrives (the caller opens, syncs and closes the file).
  // Returns the number of bytes written.
  Result<uint64_t> ExportImage(const std::string& ref, WritableFile* out) const;
  // POST /images/load with the tar read from `in`. Returns the engine's reply
  // (its "stream" lines, e.g. "Loaded image: ...").
  Result<std::string> LoadImage(SequentialFile* in) const;
  // DELETE /images/{ref}?force=0|1. NotFound when there is no such image.
  Status RemoveImage(const std::string& ref, bool force) const;

 private:
  struct Request;
  struct Response {
    long http_status = 0;
    std::string body;  // empty when the body went to a sink
  };
  Result<Response> Perform(const Request& request) const;
  // The Status for a non-2xx answer: the API's message, what was asked.
  static Status HttpError(const std::string& what, const Response& response);

  DockerClientOptions options_;
};

}  // namespace backstop::container
