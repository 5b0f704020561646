// Webhook signatures: HMAC-SHA256 over the exact body sent, in the header
// X-Backstop-Signature: sha256=<64 lowercase hex digits>, as GitHub's
// X-Hub-Signature-256. The key is read from the file or environment variable
// the spec names (NotifySpec::secret_file / secret_env), never from the spec.
//
// Thread-safety: pure functions (LoadSigningKey reads the environment).
#pragma once

#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"
#include "spec/spec.h"

namespace backstop {

inline constexpr const char* kSignatureHeader = "X-Backstop-Signature";
inline constexpr const char* kEventIdHeader = "X-Backstop-Event-Id";

// Lowercase hex HMAC-SHA256 of `data` under `key`.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// "sha256=" + HmacSha256Hex(key, body).
std::string SignatureHeaderValue(std::string_view key, std::string_view body);

// The target's signing key: "" when it names none; an error when the file or
// variable it names is missing or empty. A trailing newline of a file is
// dropped. The error names the file or variable, never the key.
Result<std::string> LoadSigningKey(FileSystem* fs, const Spec& spec, const NotifySpec& target);

}  // namespace backstop
