// An image archive as content-addressed pieces. See image_archive.h.
#include "drivers/container/image_archive.h"

#include <algorithm>
#include <memory>

namespace backstop::container {

namespace {

constexpr size_t kBlock = 512;

// Appends up to `n` bytes of `in` to `out`; fewer only at the end of the file.
Status ReadUpTo(SequentialFile* in, uint64_t n, std::string* out) {
  std::string scratch(std::min<uint64_t>(n, 1 << 20), '\0');
  while (n > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(n, scratch.size()));
    BACKSTOP_ASSIGN_OR_RETURN(std::string_view got, in->Read(want, scratch.data()));
    if (got.empty()) return Status::OK();
    out->append(got);
    n -= got.size();
  }
  return Status::OK();
}

// The size field of a tar header: octal digits, or base-256 when the high bit
// of its first byte is set (GNU, for members of 8 GiB and more).
uint64_t MemberSize(std::string_view header) {
  std::string_view field = header.substr(124, 12);
  uint64_t size = 0;
  if (static_cast<unsigned char>(field[0]) & 0x80) {
    for (size_t i = 1; i < field.size(); ++i)
      size = (size << 8) | static_cast<unsigned char>(field[i]);
    return size;
  }
  for (char ch : field) {
    if (ch >= '0' && ch <= '7')
      size = size * 8 + static_cast<uint64_t>(ch - '0');
    else if (ch != ' ' && ch != '\0')
      break;
  }
  return size;
}

bool AllZero(std::string_view block) {
  return std::all_of(block.begin(), block.end(), [](char ch) { return ch == '\0'; });
}

}  // namespace

Result<StoredArchive> StoreArchive(Store& store, FileSystem* fs, const std::string& tar_path,
                                   uint64_t chunk_bytes) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<SequentialFile> in, fs->NewSequentialFile(tar_path));
  chunk_bytes = std::max<uint64_t>(chunk_bytes, 2 * kBlock);  // a header fits in a piece
  StoredArchive out;
  std::string piece;
  auto flush = [&]() -> Status {
    if (piece.empty()) return Status::OK();
    BACKSTOP_ASSIGN_OR_RETURN(std::string digest, store.Put(piece));
    out.pieces.push_back(std::move(digest));
    out.bytes += piece.size();
    piece.clear();
    return Status::OK();
  };
  for (;;) {
    size_t start = piece.size();
    BACKSTOP_RETURN_IF_ERROR(ReadUpTo(in.get(), kBlock, &piece));
    if (piece.size() == start) break;  // the end of the file
    std::string_view header(piece.data() + start, piece.size() - start);
    if (header.size() < kBlock || AllZero(header)) {
      // The end-of-archive blocks (or a torn header): the rest is one last piece.
      for (;;) {
        size_t before = piece.size();
        BACKSTOP_RETURN_IF_ERROR(
            ReadUpTo(in.get(), chunk_bytes - std::min(chunk_bytes, before), &piece));
        if (piece.size() == before) break;
        if (piece.size() >= chunk_bytes) BACKSTOP_RETURN_IF_ERROR(flush());
      }
      break;
    }
    uint64_t remaining = (MemberSize(header) + kBlock - 1) / kBlock * kBlock;
    while (remaining > 0) {
      uint64_t room = chunk_bytes > piece.size() ? chunk_bytes - piece.size() : 0;
      if (room == 0) {
        BACKSTOP_RETURN_IF_ERROR(flush());
        continue;
      }
      size_t before = piece.size();
      BACKSTOP_RETURN_IF_ERROR(ReadUpTo(in.get(), std::min(room, remaining), &piece));
      if (piece.size() == before) break;  // a truncated member: stored as it is
      remaining -= piece.size() - before;
    }
    BACKSTOP_RETURN_IF_ERROR(flush());  // the next member starts a new piece
  }
  BACKSTOP_RETURN_IF_ERROR(flush());
  return out;
}

Status WriteArchive(Store& store, FileSystem* fs, const std::vector<std::string>& pieces,
                    const std::string& path) {
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> out, fs->NewWritableFile(path));
  for (const auto& digest : pieces) {
    BACKSTOP_RETURN_IF_ERROR(
        store.StreamContent(digest, [&](std::string_view data) { return out->Append(data); }));
  }
  BACKSTOP_RETURN_IF_ERROR(out->Sync());
  return out->Close();
}

}  // namespace backstop::container
