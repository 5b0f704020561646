#include "notify/signature.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>

#include "base/env.h"

namespace backstop {

std::string HmacSha256Hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

std::string SignatureHeaderValue(std::string_view key, std::string_view body) {
  return "sha256=" + HmacSha256Hex(key, body);
}

Result<std::string> LoadSigningKey(FileSystem* fs, const Spec& spec, const NotifySpec& target) {
  std::string key;
  if (!target.secret_env.empty()) {
    const char* v = std::getenv(target.secret_env.c_str());
    if (v == nullptr || *v == '\0') {
      return Status::FailedPrecondition("notify target " + target.name +
                                        ": the signing key's environment variable " +
                                        target.secret_env + " is not set");
    }
    key = v;
  } else if (!target.secret_file.empty()) {
    const std::string path = target.secret_file.front() == '/'
                                 ? target.secret_file
                                 : JoinPath(spec.base_dir, target.secret_file);
    auto text = fs->ReadFile(path);
    if (!text.ok()) {
      return Status::FailedPrecondition("notify target " + target.name +
                                        ": cannot read the signing key file " + path + ": " +
                                        text.status().message());
    }
    key = *text;
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    if (key.empty()) {
      return Status::FailedPrecondition("notify target " + target.name + ": the signing key file " +
                                        path + " is empty");
    }
  }
  return key;
}

}  // namespace backstop
