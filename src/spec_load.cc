// LoadSpec: the spec file from disk, checked against the built-in drivers.
// Kept apart from the parser (spec.cc) so that the parser depends on no
// global state and the fuzz target links without the drivers.
#include "driver.h"
#include "env.h"
#include "spec.h"

namespace backstop {

Result<Spec> LoadSpec(const std::string& path) {
  const std::string hint = "; run `backstop init --example mistersmith` to write a starter spec";
  Env* env = Env::Default();
  Result<std::string> text = env->fs()->ReadFile(AbsolutePath(path, CurrentDir()));
  if (!text.ok()) {
    if (text.status().IsNotFound()) return Status::NotFound(path + ": no such file" + hint);
    return text.status();
  }
  return ParseSpec(*text, path, DriverRegistry::Global());
}

}  // namespace backstop
