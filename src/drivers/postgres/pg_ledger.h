// The merge-join at the heart of the PostgreSQL data-loss ledger.
//
// Both sides stream rows sorted by key (the live database and the restore
// point's copy: shadow, staged or retained database), each row carrying its
// key fields and an md5 of its content. MergeCompare walks them once, in
// O(n) time and O(1) memory, and reports every key that is only on the live
// side ("inserted" since the restore point: the rollback discards it), only on
// the restore-point side ("deleted" since: the rollback brings it back), or on
// both with different content ("changed").
//
// Ordering contract: the SQL producing each stream must ORDER BY the key
// columns so that CompareKeys agrees with it: integer columns by value, every
// other column by its text form under COLLATE "C" (byte order).
//
// Thread-safety: none; one thread per object.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

enum class KeyKind { kInteger, kText };

struct KeyedRow {
  std::vector<std::string> key;  // unescaped text of each key column
  std::string hash;              // md5 of the row's content ("" when not compared)
};

class RowSource {
 public:
  virtual ~RowSource() = default;
  // Fills *row and returns true, or returns false at the end.
  virtual Result<bool> Next(KeyedRow* row) = 0;
};

// Rows of a COPY (SELECT k1..kn [, hash] ...) TO STDOUT on `conn`.
class CopyRowSource : public RowSource {
 public:
  // REQUIRES: `conn` outlives this object and runs nothing else meanwhile.
  CopyRowSource(PgConn* conn, size_t key_count, bool with_hash)
      : conn_(conn), key_count_(key_count), with_hash_(with_hash) {}
  ~CopyRowSource() override;
  Status Begin(const std::string& copy_sql);
  Result<bool> Next(KeyedRow* row) override;

 private:
  PgConn* conn_;
  size_t key_count_;
  bool with_hash_;
  bool active_ = false;
};

// A source over rows held in memory (tests, empty sides).
class VectorRowSource : public RowSource {
 public:
  explicit VectorRowSource(std::vector<KeyedRow> rows) : rows_(std::move(rows)) {}
  Result<bool> Next(KeyedRow* row) override;

 private:
  std::vector<KeyedRow> rows_;
  size_t next_ = 0;
};

// <0, 0, >0 like memcmp, per the ordering contract above.
int CompareKeys(const std::vector<std::string>& a, const std::vector<std::string>& b,
                const std::vector<KeyKind>& kinds);

enum class RowChange { kInserted, kDeleted, kChanged };
const char* RowChangeName(RowChange c);  // "inserted", "deleted", "changed"

struct MergeCounts {
  uint64_t inserted = 0;
  uint64_t deleted = 0;
  uint64_t changed = 0;
  uint64_t unchanged = 0;
};

// Called for each difference with the live row (inserted, changed) or the
// restore-point row (deleted). A non-OK status stops the merge.
using ChangeSink = std::function<Status(RowChange, const KeyedRow&)>;

// Compares `live` with `restore_point`. With `compare_hash` false only keys
// are compared (nothing is ever "changed"). Equal keys on both sides pair up
// one to one, so duplicate keys (whole-row hashes of a table without a
// primary key) are compared as multisets. Internal error if a side is not
// sorted.
Result<MergeCounts> MergeCompare(RowSource& live, RowSource& restore_point,
                                 const std::vector<KeyKind>& kinds, bool compare_hash,
                                 const ChangeSink& sink);

}  // namespace backstop::postgres
