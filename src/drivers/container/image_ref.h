// Image references and release names of the container driver.
//
// A release is an image tag of the repository the `image` setting names:
// with `image: localhost/orchestrator:1.4`, release "1.5" is the image
// localhost/orchestrator:1.5, and the releases `backstop deploy` offers are
// the tags of localhost/orchestrator the engine has. A container created
// from an image by id (no tag) has the image's short id as its release.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace backstop::container {

struct ImageRef {
  std::string repository;  // "localhost/orchestrator"; empty for an image id
  std::string tag;         // "1.4"; "latest" when the reference names none
  std::string id;          // "sha256:<hex>" when the reference is an image id
};

// Parses "repo[:tag][@digest]" or an image id ("sha256:<hex>" or 64 hex digits).
ImageRef ParseImageRef(const std::string& ref);

// The release a container created from `ref` runs: its tag, or for an
// image id its first 12 hex digits.
std::string ReleaseOfRef(const std::string& ref);

// The reference of `release` in the repository of `image_setting`.
std::string RefOfRelease(const std::string& image_setting, const std::string& release);

// The tags of `repository` among `images` (GET /images/json), sorted. A
// repository without a registry host also matches podman's "localhost/" form.
std::vector<std::string> ReleasesIn(const nlohmann::json& images, const std::string& repository);

}  // namespace backstop::container
