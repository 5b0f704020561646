// db-poller: a client that asks PostgreSQL a question every 10 ms and records
// how long it went without a correct answer.
//
//   db-poller CONNINFO EXPECTED_COUNT [INTERVAL_MS]
//
// Each poll runs `SELECT count(*) FROM pgbench_accounts` on a kept connection
// (reconnecting when it breaks, as a real client would). An answer is correct
// when it equals EXPECTED_COUNT, the restore point's count: an error, a missing
// table or a half-loaded one is not an answer. Runs until stdin closes, then
// prints one JSON line: polls, correct answers, and the longest gap between
// two correct answers (or from the start to the first one) in milliseconds.
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool StdinClosed(int timeout_ms) {
  struct pollfd p = {0, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) > 0) {
    char buf[64];
    return read(0, buf, sizeof buf) <= 0;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: db-poller CONNINFO EXPECTED_COUNT [INTERVAL_MS]\n");
    return 2;
  }
  std::string conninfo = std::string(argv[1]) + " connect_timeout=2";
  const std::string expected = argv[2];
  const int interval_ms = argc > 3 ? std::atoi(argv[3]) : 10;
  PGconn* conn = nullptr;
  long polls = 0, correct = 0, errors = 0, wrong = 0;
  const int64_t start = NowMs();
  int64_t last_correct = start;
  int64_t max_gap = 0;
  for (;;) {
    int64_t t = NowMs();
    ++polls;
    bool ok = false;
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      if (conn != nullptr) PQfinish(conn);
      conn = PQconnectdb(conninfo.c_str());
      // "FATAL: terminating connection" arriving between polls is counted
      // as an error by the next poll; it need not be printed.
      PQsetNoticeProcessor(
          conn, [](void*, const char*) {}, nullptr);
    }
    if (PQstatus(conn) == CONNECTION_OK) {
      PGresult* r = PQexec(conn, "SELECT count(*) FROM pgbench_accounts");
      if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        ok = expected == PQgetvalue(r, 0, 0);
        if (!ok) ++wrong;
      } else {
        ++errors;
      }
      PQclear(r);
    } else {
      ++errors;
    }
    int64_t after = NowMs();
    if (ok) {
      ++correct;
      if (t - last_correct > max_gap) max_gap = t - last_correct;
      last_correct = after;
    }
    int64_t sleep_for = interval_ms - (after - t);
    if (StdinClosed(sleep_for > 0 ? static_cast<int>(sleep_for) : 0)) break;
  }
  int64_t end = NowMs();
  if (end - last_correct > max_gap) max_gap = end - last_correct;
  std::printf(
      "{\"polls\": %ld, \"correct\": %ld, \"wrong\": %ld, \"errors\": %ld, \"max_gap_ms\": %lld, "
      "\"duration_ms\": %lld}\n",
      polls, correct, wrong, errors, static_cast<long long>(max_gap),
      static_cast<long long>(end - start));
  if (conn != nullptr) PQfinish(conn);
  return 0;
}
