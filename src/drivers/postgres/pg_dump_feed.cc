#include "drivers/postgres/pg_dump_feed.h"
#include "base/parallel_for.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace backstop::postgres {
namespace {

// How often the pipes nobody reads yet are probed (open with O_NONBLOCK
// fails with ENXIO until a reader is there).
constexpr auto kProbeInterval = std::chrono::milliseconds(1);
// A larger pipe buffer: fewer wake-ups of the reader and of the stream.
constexpr int kPipeBytes = 1 << 20;

bool PlainName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

}  // namespace

Result<std::unique_ptr<DumpFeeder>> DumpFeeder::Create(Store* store, const std::string& dir,
                                                       const std::vector<DumpFile>& files,
                                                       const FeedOptions& options) {
  std::unique_ptr<DumpFeeder> feeder(new DumpFeeder(store));
  // The largest files are streamed, the rest extracted.
  std::vector<const DumpFile*> order;
  for (const auto& f : files) {
    if (!PlainName(f.name)) {
      return Status::Corruption("restore point entry names a bad dump file: '" + f.name + "'");
    }
    order.push_back(&f);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const DumpFile* a, const DumpFile* b) { return a->size > b->size; });
  std::vector<const DumpFile*> extract;
  for (const DumpFile* f : order) {
    bool stream = f->size >= options.stream_min_bytes && f->name != "toc.dat" &&
                  feeder->pipes_.size() < options.max_streams;
    if (!stream) {
      extract.push_back(f);
      continue;
    }
    auto pipe = std::make_unique<Pipe>();
    pipe->path = JoinPath(dir, f->name);
    pipe->digest = f->digest;
    if (::mkfifo(pipe->path.c_str(), 0600) != 0) {
      return Status::FromErrno("mkfifo " + pipe->path, errno);
    }
    feeder->pipes_.push_back(std::move(pipe));
  }

  // Extract the rest on a few threads (scratch copies: a crash redoes it all).
  BACKSTOP_RETURN_IF_ERROR(
      ParallelFor(extract.size(), std::clamp<int>(options.extract_threads, 1, 8), [&](size_t i) {
        Status st =
            store->GetToScratchFile(extract[i]->digest, JoinPath(dir, extract[i]->name), 0600);
        return st.ok() ? st : st.WithContext("dump file " + extract[i]->name);
      }));
  feeder->extracted_ = extract.size();
  return feeder;
}

DumpFeeder::~DumpFeeder() {
  if (!finished_) (void)Finish();
}

void DumpFeeder::Start() {
  started_ = true;
  if (!pipes_.empty()) server_ = std::thread([this] { Serve(); });
}

void DumpFeeder::Serve() {
  for (;;) {
    bool waiting = false;
    for (auto& p : pipes_) {
      if (p->opened) continue;
      int fd = ::open(p->path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) {
        if (errno == ENXIO) {  // no reader yet
          waiting = true;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        p->status = Status::FromErrno("open pipe " + p->path, errno);
        p->opened = true;
        // A reader arriving later must not wait forever: it finds no file.
        ::unlink(p->path.c_str());
        continue;
      }
      p->opened = true;
      int flags = ::fcntl(fd, F_GETFL);
      if (flags >= 0) (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
      (void)::fcntl(fd, F_SETPIPE_SZ, kPipeBytes);  // best effort
      Pipe* raw = p.get();
      p->thread = std::thread([this, raw, fd] { Stream(raw, fd); });
    }
    if (!waiting || stop_.load()) return;
    std::this_thread::sleep_for(kProbeInterval);
  }
}

void DumpFeeder::Stream(Pipe* pipe, int fd) {
  // A reader that exits early must give EPIPE here, not kill the process.
  sigset_t pipe_signal;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
  Status st = store_->StreamContent(pipe->digest, [&](std::string_view chunk) -> Status {
    const char* data = chunk.data();
    size_t n = chunk.size();
    while (n > 0) {
      ssize_t w = ::write(fd, data, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EPIPE) {
          return Status::Aborted("the reader of " + pipe->path + " stopped reading");
        }
        return Status::FromErrno("write pipe " + pipe->path, errno);
      }
      data += w;
      n -= static_cast<size_t>(w);
    }
    return Status::OK();
  });
  ::close(fd);
  // Consume a SIGPIPE raised by a write above, so none is left pending.
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_signal, nullptr, &zero) > 0) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  pipe->status = st.ok() ? st : st.WithContext("streaming dump file " + Basename(pipe->path));
}

Status DumpFeeder::Finish() {
  if (!finished_) {
    finished_ = true;
    finish_status_ = Collect();
  }
  return finish_status_;
}

Status DumpFeeder::Collect() {
  stop_ = true;
  if (server_.joinable()) server_.join();
  for (auto& p : pipes_) {
    if (p->thread.joinable()) p->thread.join();
  }
  Status first;
  std::vector<std::string> unread;
  for (auto& p : pipes_) {
    if (!p->opened || !started_) {
      unread.push_back(Basename(p->path));
    } else if (!p->status.ok() && first.ok()) {
      first = p->status;
    }
  }
  // A damaged blob first: it explains a failure of the reader too.
  if (!first.ok()) return first;
  if (!unread.empty()) {
    std::string names;
    for (const auto& n : unread) names += (names.empty() ? "" : ", ") + n;
    return Status::FailedPrecondition("pg_restore did not read dump file(s) " + names);
  }
  return Status::OK();
}

}  // namespace backstop::postgres
