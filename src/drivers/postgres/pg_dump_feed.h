// DumpFeeder: lays out a pg_dump directory-format dump from the store for
// pg_restore without writing its large data files to disk.
//
// Small files (toc.dat, small tables) are extracted as scratch files. Each
// large data file becomes a named pipe at its place in the directory; once
// pg_restore opens a pipe for reading, a thread streams the blob into it,
// decoding and hashing as it goes. So decompression overlaps the restore,
// and the dump never needs disk space of its own.
//
// The price of streaming: a blob is only known good once it has been read to
// the end, after pg_restore has loaded it. A stream that fails (damaged blob,
// pg_restore gone) makes Finish() fail, and so the restore that read it; the
// caller must then discard the target database. The same holds for a pipe
// pg_restore never opened: a dump file that was not restored is an error.
//
// Lifecycle: Create (extracts, makes pipes) -> Start -> run pg_restore ->
// Finish (always, also when pg_restore failed: it stops waiting for readers
// and joins every thread). The destructor calls Finish if needed.
// Thread-safety: one thread drives a feeder; it runs its own threads inside.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "store/store.h"

namespace backstop::postgres {

struct DumpFile {
  std::string name;    // file name inside the dump directory
  std::string digest;  // its blob
  uint64_t size = 0;   // its size in bytes (decides what is streamed)
};

struct FeedOptions {
  int extract_threads = 2;              // parallel extraction of the small files
  uint64_t stream_min_bytes = 1 << 20;  // smaller files are extracted
  size_t max_streams = 16;              // at most this many (the largest) are streamed
};

class DumpFeeder {
 public:
  // Fills the existing, empty directory `dir`. Corruption if an extracted
  // blob is damaged or a file name is not a plain name.
  static Result<std::unique_ptr<DumpFeeder>> Create(Store* store, const std::string& dir,
                                                    const std::vector<DumpFile>& files,
                                                    const FeedOptions& options);
  ~DumpFeeder();
  DumpFeeder(const DumpFeeder&) = delete;
  DumpFeeder& operator=(const DumpFeeder&) = delete;

  // Starts serving the pipes. REQUIRES: called once, before the reader starts.
  void Start();
  // Stops waiting for readers and joins every stream. OK only if every pipe
  // was opened and streamed to the end with its hash verified. Later calls
  // return the same status.
  Status Finish();

  size_t extracted() const { return extracted_; }
  size_t streamed() const { return pipes_.size(); }

 private:
  struct Pipe {
    std::string path;
    std::string digest;
    bool opened = false;
    Status status;  // of its stream; guarded by mu_
    std::thread thread;
  };

  DumpFeeder(Store* store) : store_(store) {}
  void Serve();
  void Stream(Pipe* pipe, int fd);
  Status Collect();

  Store* store_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  size_t extracted_ = 0;
  std::atomic<bool> stop_{false};
  std::thread server_;
  bool started_ = false;
  bool finished_ = false;
  Status finish_status_;
  std::mutex mu_;
};

}  // namespace backstop::postgres
