#include "store/remote/object_store.h"

namespace backstop {

Status CheckObjectKey(std::string_view key) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("object key \"" + std::string(key) + "\" " + why);
  };
  if (key.empty()) return bad("is empty");
  if (key.front() == '/' || key.back() == '/') return bad("starts or ends with '/'");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty()) return bad("has an empty part (\"//\")");
    if (part == "." || part == "..") return bad("has a \".\" or \"..\" part");
    start = end + 1;
  }
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/';
    if (!ok) return bad("holds a character other than A-Z a-z 0-9 . _ - /");
  }
  return Status::OK();
}

}  // namespace backstop
