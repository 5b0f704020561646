// JSON-lines writer and reader. See json_lines.h.
#include "base/json_lines.h"

#include "base/posix_file.h"

namespace backstop {

JsonLinesWriter::JsonLinesWriter(std::unique_ptr<WritableFile> file, std::string name)
    : file_(std::move(file)), name_(std::move(name)) {}

Result<std::unique_ptr<JsonLinesWriter>> JsonLinesWriter::Create(FileSystem* fs,
                                                                 const std::string& path) {
  std::string tmp = TempNameFor(path);
  BACKSTOP_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file,
                            fs->NewWritableFile(tmp, 0600, WriteMode::kCreateNew));
  std::unique_ptr<JsonLinesWriter> w(new JsonLinesWriter(std::move(file), tmp));
  w->fs_ = fs;
  w->final_path_ = path;
  return w;
}

JsonLinesWriter::~JsonLinesWriter() {
  file_.reset();  // closes without syncing, if still open
  if (fs_ != nullptr && !final_path_.empty()) (void)fs_->Remove(name_);
}

Status JsonLinesWriter::Fail(Status st) {
  if (failed_.ok()) failed_ = st;
  return st;
}

Status JsonLinesWriter::Append(const nlohmann::json& record) {
  if (!failed_.ok()) return failed_;
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  Status st = file_->Append(line);
  // A file from Create is invisible until Close renames it, so flushing each
  // line would buy nothing but a write call per record (a ledger scan writes
  // one per row): its lines are flushed as the buffer fills and at Close.
  if (st.ok() && final_path_.empty()) st = file_->Flush();
  if (!st.ok()) return Fail(st);
  ++lines_;
  return Status::OK();
}

Status JsonLinesWriter::Sync() {
  if (!failed_.ok()) return failed_;
  Status st = file_->Sync();
  return st.ok() ? st : Fail(st);
}

Status JsonLinesWriter::Close() {
  BACKSTOP_RETURN_IF_ERROR(Sync());
  Status st = file_->Close();
  if (!st.ok()) return Fail(st);
  if (fs_ == nullptr) return Status::OK();
  st = fs_->Rename(name_, final_path_);
  if (!st.ok()) return Fail(st);
  final_path_.clear();  // in place: nothing for the destructor to remove
  st = fs_->SyncDir(Dirname(name_));
  return st.ok() ? st : Fail(st);
}

Result<std::vector<nlohmann::json>> ReadJsonLines(FileSystem* fs, const std::string& path) {
  std::vector<nlohmann::json> out;
  auto text = fs->ReadFile(path);
  if (!text.ok()) {
    if (text.status().IsNotFound()) return out;
    return text.status();
  }
  size_t start = 0;
  for (int line = 1; start < text->size(); ++line) {
    size_t end = text->find('\n', start);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = text->size();
    std::string_view row(text->data() + start, end - start);
    start = end + 1;
    if (row.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(row, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (!terminated) break;  // a torn tail: not a record (json_lines.h)
      return Status::Corruption(path + ":" + std::to_string(line) + ": not a JSON object");
    }
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace backstop
