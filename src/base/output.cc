#include "base/output.h"

namespace backstop {

void Output::Line(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  FILE* f = json_ ? err_ : out_;
  std::fputs(text.c_str(), f);
  std::fputc('\n', f);
  std::fflush(f);
}

void Output::Error(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  std::fputs(text.c_str(), err_);
  std::fputc('\n', err_);
  std::fflush(err_);
}

void Output::Json(const nlohmann::json& doc) {
  if (!json_) return;
  std::lock_guard<std::mutex> lock(mu_);
  std::fputs(doc.dump(2).c_str(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace backstop
