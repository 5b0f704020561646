#include "store/remote/store_crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/remove_on_exit.h"
#include "base/strings.h"

namespace backstop {
namespace {

constexpr char kEncryptedMagic[8] = {'B', 'S', 'T', 'P', 'E', 'N', 'C', '1'};
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kCryptoChunk = 1 << 20;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

std::array<uint8_t, 32> HmacSha256(const uint8_t* key, size_t key_len, std::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key, static_cast<int>(key_len),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

std::string ToHex(const uint8_t* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status OpenSslError(const char* what) {
  return Status::Internal(std::string("OpenSSL ") + what + " failed");
}

// One AES-256-GCM context set up for `encrypt`, with `aad` already fed.
Result<CipherCtx> StartGcm(const StoreKey& key, const uint8_t* nonce, std::string_view aad,
                           bool encrypt) {
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return OpenSslError("EVP_CIPHER_CTX_new");
  const EVP_CIPHER* cipher = EVP_aes_256_gcm();
  int ok = encrypt
               ? EVP_EncryptInit_ex(ctx.get(), cipher, nullptr, key.encryption_key().data(), nonce)
               : EVP_DecryptInit_ex(ctx.get(), cipher, nullptr, key.encryption_key().data(), nonce);
  if (ok != 1) return OpenSslError("GCM init");
  int unused = 0;
  const auto* aad_bytes = reinterpret_cast<const unsigned char*>(aad.data());
  ok =
      encrypt
          ? EVP_EncryptUpdate(ctx.get(), nullptr, &unused, aad_bytes, static_cast<int>(aad.size()))
          : EVP_DecryptUpdate(ctx.get(), nullptr, &unused, aad_bytes, static_cast<int>(aad.size()));
  if (ok != 1) return OpenSslError("GCM associated data");
  return ctx;
}

Status GcmUpdate(EVP_CIPHER_CTX* ctx, bool encrypt, std::string_view in, std::string* out) {
  size_t old = out->size();
  out->resize(old + in.size());
  int len = 0;
  auto* dst = reinterpret_cast<unsigned char*>(out->data() + old);
  const auto* src = reinterpret_cast<const unsigned char*>(in.data());
  int ok = encrypt ? EVP_EncryptUpdate(ctx, dst, &len, src, static_cast<int>(in.size()))
                   : EVP_DecryptUpdate(ctx, dst, &len, src, static_cast<int>(in.size()));
  if (ok != 1) return OpenSslError("GCM update");
  out->resize(old + static_cast<size_t>(len));
  return Status::OK();
}

Status FinishEncrypt(EVP_CIPHER_CTX* ctx, std::string* out_tag) {
  unsigned char tail[16];
  int len = 0;
  if (EVP_EncryptFinal_ex(ctx, tail, &len) != 1 || len != 0) return OpenSslError("GCM final");
  out_tag->resize(kTagSize);
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, out_tag->data()) != 1) {
    return OpenSslError("GCM get tag");
  }
  return Status::OK();
}

// False when the tag does not authenticate what was decrypted.
bool FinishDecrypt(EVP_CIPHER_CTX* ctx, std::string_view tag) {
  std::string copy(tag);
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, copy.data()) != 1) return false;
  unsigned char tail[16];
  int len = 0;
  return EVP_DecryptFinal_ex(ctx, tail, &len) == 1;
}

Status NotAuthentic(std::string_view aad) {
  return Status::Corruption("object " + std::string(aad) +
                            " does not authenticate: it was altered or cut short, or it was "
                            "encrypted with another key or stored under another name");
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  return ToHex(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

Result<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::InvalidArgument("odd number of hex digits");
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]);
    int lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return Status::InvalidArgument("not a hex digit at " + std::to_string(i));
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

Result<StoreKey> StoreKey::FromText(std::string_view text, const std::string& where) {
  const std::string t = Trim(text);
  if (t.size() != 64) {
    return Status::InvalidArgument(where +
                                   " does not hold a store key: expected 64 hex digits, "
                                   "found " +
                                   std::to_string(t.size()) +
                                   " characters (make one with `backstop store key new FILE`)");
  }
  uint8_t master[32];
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexValue(t[2 * i]);
    int lo = HexValue(t[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::InvalidArgument(where + " does not hold a store key: character " +
                                     std::to_string(2 * i + (hi < 0 ? 1 : 2)) +
                                     " is not a hex digit");
    }
    master[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  StoreKey key;
  key.enc_ = HmacSha256(master, sizeof master, "backstop-store-v1 encryption");
  key.ids_ = HmacSha256(master, sizeof master, "backstop-store-v1 object-ids");
  auto fp = HmacSha256(master, sizeof master, "backstop-store-v1 fingerprint");
  key.fingerprint_ = ToHex(fp.data(), 8);
  std::memset(master, 0, sizeof master);
  return key;
}

Result<StoreKey> StoreKey::Load(FileSystem* fs, const std::string& key_file) {
  if (key_file.empty()) {
    const char* env = std::getenv("BACKSTOP_STORE_KEY");
    if (env == nullptr || *env == '\0') {
      return Status::NotFound(
          "no store key: the spec's store names no key_file and BACKSTOP_STORE_KEY is not set "
          "(make a key with `backstop store key new FILE`, keep a copy off this host, and name "
          "it in `key_file:`)");
    }
    return FromText(env, "BACKSTOP_STORE_KEY");
  }
  auto info = fs->Stat(key_file);
  if (!info.ok()) {
    return info.status().WithContext("cannot read the store key file " + key_file);
  }
  if (info->is_symlink || !info->is_regular) {
    return Status::FailedPrecondition("the store key file " + key_file +
                                      " is not a regular file (a link is not followed)");
  }
  if ((info->mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", info->mode & 07777);
    return Status::FailedPrecondition("the store key file " + key_file + " has mode " + mode +
                                      ": other users could read it; run `chmod 600 " + key_file +
                                      "` (and check who has seen it)");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::string text, fs->ReadFileNoFollow(key_file));
  return FromText(text, "the key file " + key_file);
}

Result<std::string> StoreKey::Generate() {
  uint8_t bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return OpenSslError("RAND_bytes");
  std::string hex = ToHex(bytes, sizeof bytes);
  std::memset(bytes, 0, sizeof bytes);
  return hex;
}

std::string StoreKey::BlobObjectId(const std::string& sha256_hex) const {
  auto mac = HmacSha256(ids_.data(), ids_.size(), "blob " + sha256_hex);
  return ToHex(mac.data(), mac.size());
}

Result<std::string> EncryptBytes(const StoreKey& key, std::string_view aad,
                                 std::string_view plain) {
  uint8_t nonce[kNonceSize];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return OpenSslError("RAND_bytes");
  BACKSTOP_ASSIGN_OR_RETURN(CipherCtx ctx, StartGcm(key, nonce, aad, /*encrypt=*/true));
  std::string out(kEncryptedMagic, sizeof kEncryptedMagic);
  out.append(reinterpret_cast<const char*>(nonce), sizeof nonce);
  out.reserve(out.size() + plain.size() + kTagSize);
  for (size_t at = 0; at < plain.size(); at += kCryptoChunk) {
    BACKSTOP_RETURN_IF_ERROR(GcmUpdate(ctx.get(), true, plain.substr(at, kCryptoChunk), &out));
  }
  std::string tag;
  BACKSTOP_RETURN_IF_ERROR(FinishEncrypt(ctx.get(), &tag));
  out += tag;
  return out;
}

Result<std::string> DecryptBytes(const StoreKey& key, std::string_view aad,
                                 std::string_view sealed) {
  if (sealed.size() < kEncryptionOverhead ||
      std::memcmp(sealed.data(), kEncryptedMagic, sizeof kEncryptedMagic) != 0) {
    return Status::Corruption("object " + std::string(aad) +
                              " is not an encrypted Backstop object (no BSTPENC1 header)");
  }
  const auto* nonce = reinterpret_cast<const uint8_t*>(sealed.data() + sizeof kEncryptedMagic);
  BACKSTOP_ASSIGN_OR_RETURN(CipherCtx ctx, StartGcm(key, nonce, aad, /*encrypt=*/false));
  std::string_view body =
      sealed.substr(sizeof kEncryptedMagic + kNonceSize, sealed.size() - kEncryptionOverhead);
  std::string out;
  out.reserve(body.size());
  for (size_t at = 0; at < body.size(); at += kCryptoChunk) {
    BACKSTOP_RETURN_IF_ERROR(GcmUpdate(ctx.get(), false, body.substr(at, kCryptoChunk), &out));
  }
  if (!FinishDecrypt(ctx.get(), sealed.substr(sealed.size() - kTagSize))) {
    return NotAuthentic(aad);
  }
  return out;
}

Status EncryptFile(const StoreKey& key, std::string_view aad, FileSystem* fs,
                   const std::string& in_path, const std::string& out_path) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in, fs->NewSequentialFile(in_path));
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out,
                            fs->NewWritableFile(out_path, 0600, WriteMode::kTruncate));
  RemoveOnExit cleanup(fs, out_path);
  uint8_t nonce[kNonceSize];
  if (RAND_bytes(nonce, sizeof nonce) != 1) return OpenSslError("RAND_bytes");
  BACKSTOP_ASSIGN_OR_RETURN(CipherCtx ctx, StartGcm(key, nonce, aad, /*encrypt=*/true));
  BACKSTOP_RETURN_IF_ERROR(out->Append(std::string_view(kEncryptedMagic, sizeof kEncryptedMagic)));
  BACKSTOP_RETURN_IF_ERROR(
      out->Append(std::string_view(reinterpret_cast<const char*>(nonce), sizeof nonce)));
  std::string scratch(kCryptoChunk, '\0');
  std::string cipher;
  for (;;) {
    BACKSTOP_ASSIGN_OR_RETURN(std::string_view chunk, in->Read(scratch.size(), scratch.data()));
    if (chunk.empty()) break;
    cipher.clear();
    BACKSTOP_RETURN_IF_ERROR(GcmUpdate(ctx.get(), true, chunk, &cipher));
    BACKSTOP_RETURN_IF_ERROR(out->Append(cipher));
  }
  std::string tag;
  BACKSTOP_RETURN_IF_ERROR(FinishEncrypt(ctx.get(), &tag));
  BACKSTOP_RETURN_IF_ERROR(out->Append(tag));
  BACKSTOP_RETURN_IF_ERROR(out->Sync());
  BACKSTOP_RETURN_IF_ERROR(out->Close());
  cleanup.Dismiss();
  return Status::OK();
}

Status DecryptFile(const StoreKey& key, std::string_view aad, FileSystem* fs,
                   const std::string& in_path, const std::string& out_path, uint32_t mode) {
  BACKSTOP_ASSIGN_OR_RETURN(FileInfo info, fs->Stat(in_path));
  if (info.size < kEncryptionOverhead) {
    return Status::Corruption("object " + std::string(aad) + " is " + std::to_string(info.size) +
                              " bytes long, shorter than any encrypted object");
  }
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in, fs->NewSequentialFile(in_path));
  char header[sizeof kEncryptedMagic + kNonceSize];
  BACKSTOP_ASSIGN_OR_RETURN(std::string_view head, in->Read(sizeof header, header));
  if (head.size() != sizeof header ||
      std::memcmp(header, kEncryptedMagic, sizeof kEncryptedMagic) != 0) {
    return Status::Corruption("object " + std::string(aad) +
                              " is not an encrypted Backstop object (no BSTPENC1 header)");
  }
  BACKSTOP_ASSIGN_OR_RETURN(
      CipherCtx ctx,
      StartGcm(key, reinterpret_cast<const uint8_t*>(header + sizeof kEncryptedMagic), aad,
               /*encrypt=*/false));
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out,
                            fs->NewWritableFile(out_path, mode, WriteMode::kTruncate));
  RemoveOnExit cleanup(fs, out_path);
  uint64_t body_left = info.size - kEncryptionOverhead;
  std::string scratch(kCryptoChunk, '\0');
  std::string plain;
  while (body_left > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(body_left, scratch.size()));
    BACKSTOP_ASSIGN_OR_RETURN(std::string_view chunk, in->Read(want, scratch.data()));
    if (chunk.empty()) {
      return Status::Corruption("object " + std::string(aad) + " changed while it was read");
    }
    plain.clear();
    BACKSTOP_RETURN_IF_ERROR(GcmUpdate(ctx.get(), false, chunk, &plain));
    BACKSTOP_RETURN_IF_ERROR(out->Append(plain));
    body_left -= chunk.size();
  }
  char tag[kTagSize];
  BACKSTOP_ASSIGN_OR_RETURN(std::string_view tag_read, in->Read(sizeof tag, tag));
  if (tag_read.size() != kTagSize || !FinishDecrypt(ctx.get(), tag_read)) return NotAuthentic(aad);
  BACKSTOP_RETURN_IF_ERROR(out->Sync());
  BACKSTOP_RETURN_IF_ERROR(out->Close());
  cleanup.Dismiss();
  return Status::OK();
}

}  // namespace backstop
