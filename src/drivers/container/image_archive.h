// An image archive (the `docker save` tar the engine exports) kept in the
// store as content-addressed pieces, so that what did not change between two
// snapshots (a layer, the same in both) is stored once.
//
// The tar is cut at every member's header: a piece is one member (its
// header and its padded data), and a member larger than `chunk_bytes` is
// cut further every `chunk_bytes`. What follows the last member (the two
// zero blocks and any padding) is one last piece. Pieces are stored as
// blobs; their digests, in order, are the archive: concatenated they are the
// exported bytes, exactly. The cutting only decides where pieces end, never
// what they hold, so a tar this reader does not understand is still stored
// whole and restored byte for byte (only its dedup suffers).
//
// Memory: at most one piece (chunk_bytes) at a time; an image of any size
// streams through.
//
// Thread-safety: the functions are safe to call from several threads on
// different files (Store is thread-safe).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"
#include "store/store.h"

namespace backstop::container {

inline constexpr uint64_t kArchiveChunkBytes = 4 << 20;

struct StoredArchive {
  std::vector<std::string> pieces;  // blob digests in archive order (may repeat)
  uint64_t bytes = 0;               // the archive's size
};

// Stores the tar at `tar_path` as pieces (above).
Result<StoredArchive> StoreArchive(Store& store, FileSystem* fs, const std::string& tar_path,
                                   uint64_t chunk_bytes = kArchiveChunkBytes);

// Writes the archive made of `pieces` to `path` (created or truncated,
// synced), each piece verified while it streams.
Status WriteArchive(Store& store, FileSystem* fs, const std::vector<std::string>& pieces,
                    const std::string& path);

}  // namespace backstop::container
