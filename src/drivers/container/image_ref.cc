// Image references and release names. See image_ref.h.
#include "drivers/container/image_ref.h"

#include <algorithm>

#include "base/hash.h"

namespace backstop::container {

using nlohmann::json;

namespace {

bool SameRepository(const std::string& a, const std::string& b) {
  return a == b || a == "localhost/" + b || b == "localhost/" + a;
}

}  // namespace

ImageRef ParseImageRef(const std::string& ref) {
  ImageRef out;
  if (ref.rfind("sha256:", 0) == 0 || IsSha256Hex(ref)) {
    out.id = ref.rfind("sha256:", 0) == 0 ? ref : "sha256:" + ref;
    return out;
  }
  std::string name = ref.substr(0, ref.find('@'));
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    out.repository = name.substr(0, colon);
    out.tag = name.substr(colon + 1);
  } else {
    out.repository = name;
    out.tag = "latest";
  }
  return out;
}

std::string ReleaseOfRef(const std::string& ref) {
  ImageRef parsed = ParseImageRef(ref);
  if (!parsed.id.empty()) return parsed.id.substr(7, 12);
  return parsed.tag;
}

std::string RefOfRelease(const std::string& image_setting, const std::string& release) {
  return ParseImageRef(image_setting).repository + ":" + release;
}

std::vector<std::string> ReleasesIn(const json& images, const std::string& repository) {
  std::vector<std::string> out;
  if (!images.is_array()) return out;
  for (const auto& image : images) {
    if (!image.is_object() || !image.contains("RepoTags") || !image["RepoTags"].is_array())
      continue;
    for (const auto& tag : image["RepoTags"]) {
      if (!tag.is_string()) continue;
      ImageRef parsed = ParseImageRef(tag.get<std::string>());
      if (!parsed.repository.empty() && SameRepository(parsed.repository, repository)) {
        out.push_back(parsed.tag);
      }
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace backstop::container
