// The nats driver's files. See nats_files.h.
#include "drivers/nats/nats_files.h"

#include <unistd.h>

#include <atomic>

#include "store/store.h"

namespace backstop::nats {

using nlohmann::json;

std::string ComponentDir(const DriverContext& ctx, const std::string& component) {
  return JoinPath(JoinPath(ctx.state_dir, "components"), component);
}

Result<std::string> WorkDir(const DriverContext& ctx, const std::string& component) {
  std::string dir;
  if (!ctx.state_dir.empty()) {
    dir = JoinPath(ComponentDir(ctx, component), "tmp");
  } else if (ctx.store != nullptr) {
    dir = JoinPath(ctx.store->root(), "tmp");
  } else {
    return Status::InvalidArgument("component " + component + ": no state directory or store");
  }
  BACKSTOP_RETURN_IF_ERROR(ctx.env->fs()->CreateDirs(dir));
  return dir;
}

std::string TempName(const std::string& dir, const std::string& stream, const char* what) {
  static std::atomic<uint64_t> counter{0};
  return JoinPath(dir, stream + "." + what + "." + std::to_string(::getpid()) + "." +
                           std::to_string(counter.fetch_add(1)));
}

// --- Health state -----------------------------------------------------------------

std::string HealthStatePath(const DriverContext& ctx, const std::string& component) {
  if (ctx.state_dir.empty()) return "";
  return JoinPath(ComponentDir(ctx, component), "nats-health.json");
}

json LoadJsonFile(FileSystem* fs, const std::string& path) {
  if (path.empty()) return json::object();
  auto text = fs->ReadFile(path);
  if (!text.ok()) return json::object();
  try {
    json j = json::parse(*text);
    return j.is_object() ? j : json::object();
  } catch (const std::exception&) {
    return json::object();
  }
}

Status SaveJsonFile(FileSystem* fs, const std::string& path, const json& j) {
  if (path.empty()) return Status::OK();
  BACKSTOP_RETURN_IF_ERROR(fs->CreateDirs(Dirname(path)));
  return fs->WriteFileAtomic(path, j.dump(2) + "\n", 0600);
}

}  // namespace backstop::nats
