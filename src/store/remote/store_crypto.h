// Client-side encryption of what Backstop sends to a remote store
// (docs/store.md, "Encryption format").
//
// One master key of 32 random bytes, written as 64 hex digits in a key file
// (`store.key_file` in the spec) or in the environment variable
// BACKSTOP_STORE_KEY. Two keys are derived from it with HMAC-SHA256 (labels
// "backstop-store-v1 encryption" and "backstop-store-v1 object-ids"), so that
// the key that names objects never encrypts anything.
//
// An encrypted object is
//   "BSTPENC1" (8 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext | tag (16 bytes)
// with the object's key in the bucket ("blobs/ab/ab12…") as associated data:
// an object copied to another name, or one blob put in another's place, fails
// authentication instead of being restored as the wrong thing. Random 96-bit
// nonces are safe far beyond the number of objects one store will ever hold.
//
// Object ids: a blob is named by HMAC-SHA256(id key, its sha256), which is a
// keyed function of its plaintext (as restic names blobs), computed without
// reading the blob again: without the key nobody can tell from the bucket
// whether it holds a file whose content they know.
//
// Thread-safety: a StoreKey is immutable after Load; every function is safe
// to call from several threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

class StoreKey {
 public:
  // Parses 64 hex digits (surrounding whitespace ignored). `where` names the
  // source for messages ("the key file /etc/backstop/store.key").
  static Result<StoreKey> FromText(std::string_view text, const std::string& where);
  // From `key_file` when not empty (a regular file, not a link, readable by
  // its owner only: a key other users can read is refused), else from
  // BACKSTOP_STORE_KEY. NotFound when neither is set.
  static Result<StoreKey> Load(FileSystem* fs, const std::string& key_file);
  // 64 hex digits of fresh randomness (OpenSSL's RAND_bytes).
  static Result<std::string> Generate();

  // The object id of a blob: hex HMAC-SHA256(id key, sha256 hex digest).
  std::string BlobObjectId(const std::string& sha256_hex) const;
  // A short public name of the key for messages ("key 3f2a91c0…"): the
  // first 16 hex digits of HMAC(master, "fingerprint"); reveals nothing usable.
  const std::string& fingerprint() const { return fingerprint_; }

  const std::array<uint8_t, 32>& encryption_key() const { return enc_; }

 private:
  std::array<uint8_t, 32> enc_{};
  std::array<uint8_t, 32> ids_{};
  std::string fingerprint_;
};

// Bytes an encrypted object adds to its plaintext (magic, nonce, tag).
constexpr size_t kEncryptionOverhead = 8 + 12 + 16;

// Encrypts `plain` in memory with `aad` (the object key) as associated data.
Result<std::string> EncryptBytes(const StoreKey& key, std::string_view aad, std::string_view plain);
// Authenticates and decrypts. Corruption when the object was altered, is
// truncated, or was encrypted with another key or for another name.
Result<std::string> DecryptBytes(const StoreKey& key, std::string_view aad,
                                 std::string_view sealed);

// The same for files of any size, streaming (bounded memory). The output is
// created 0600 (`mode` for DecryptFile), fsynced, and removed when anything
// fails: in particular DecryptFile leaves nothing behind when the tag does not
// verify, so unauthenticated plaintext never outlives the call.
Status EncryptFile(const StoreKey& key, std::string_view aad, FileSystem* fs,
                   const std::string& in_path, const std::string& out_path);
Status DecryptFile(const StoreKey& key, std::string_view aad, FileSystem* fs,
                   const std::string& in_path, const std::string& out_path, uint32_t mode);

// Lowercase hex of `bytes`, and back (InvalidArgument on anything else).
std::string HexEncode(std::string_view bytes);
Result<std::string> HexDecode(std::string_view hex);

}  // namespace backstop
