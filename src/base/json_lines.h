// JSON lines: one JSON value a line, the format of Backstop's data-loss
// ledgers (what a rollback discarded, for salvage) and of key lists.
//
// JsonLinesWriter writes records through a WritableFile and syncs them on
// Sync and Close. A file it continues (the constructor) has each line flushed
// to the operating system as it is appended (a crash of Backstop loses no
// appended record; a crash of the machine may lose those after the last
// Sync). A ledger is written with Create: its lines go to a temporary file
// beside it, buffered, and Close renames it into place once complete, so
// nobody ever reads a half-written ledger under its real name.
//
// ReadJsonLines reads them back. A torn tail (the last line has no newline
// and is not valid JSON: a write cut short by a full disk or a crash) is not
// a record and is left out, as LevelDB's log reader drops a torn last
// record; every complete line before it is returned. An unterminated last
// line that is valid JSON is a record whose newline was lost (or a file
// written by hand) and is returned: the writer's records are objects, and no
// proper prefix of an object's text is valid JSON, so a torn object is
// never mistaken for one. A damaged line that is followed by others is
// Corruption.
//
// Ownership: a writer owns its file. Thread-safety: a writer is not
// thread-safe; ReadJsonLines is safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/env.h"
#include "base/status.h"

namespace backstop {

class JsonLinesWriter {
 public:
  // Writes to `file` as it is (a file opened for appending continues it).
  // `name` is used in errors.
  JsonLinesWriter(std::unique_ptr<WritableFile> file, std::string name);
  // A new file that appears at `path` only when Close succeeds: private
  // (0600), written under a temporary name beside it (never through a link).
  // Destroyed without Close (an error, a crash), it leaves nothing at `path`
  // and removes its temporary file.
  static Result<std::unique_ptr<JsonLinesWriter>> Create(FileSystem* fs, const std::string& path);
  // Closes without syncing if still open; a writer from Create removes its
  // temporary file.
  ~JsonLinesWriter();
  JsonLinesWriter(const JsonLinesWriter&) = delete;
  JsonLinesWriter& operator=(const JsonLinesWriter&) = delete;

  // Appends `record` as one line (flushed at once unless from Create). Strings that are not UTF-8
  // are written with U+FFFD in place of the bad bytes. After a failed
  // Append the file may end in a torn line (see above); the writer refuses
  // further calls.
  Status Append(const nlohmann::json& record);
  // Makes every appended line durable (fsync).
  Status Sync();
  // Syncs and closes; a writer from Create then renames the file into place
  // and syncs the directory. REQUIRES: called once.
  Status Close();

  uint64_t lines() const { return lines_; }

 private:
  Status Fail(Status st);

  std::unique_ptr<WritableFile> file_;
  std::string name_;
  // Set by Create: the temporary file and where it goes on Close.
  FileSystem* fs_ = nullptr;
  std::string final_path_;
  Status failed_;  // the first error; later calls return it
  uint64_t lines_ = 0;
};

// The values of a JSON-lines file, blank lines skipped, a torn tail left out
// (above): empty when the file does not exist; Corruption naming the line
// when one before the last is not JSON.
Result<std::vector<nlohmann::json>> ReadJsonLines(FileSystem* fs, const std::string& path);

}  // namespace backstop
