#include "drivers/postgres/pg_ledger.h"

#include <charconv>
#include <cstring>

namespace backstop::postgres {

CopyRowSource::~CopyRowSource() {
  if (active_) conn_->CopyOutAbort();
}

Status CopyRowSource::Begin(const std::string& copy_sql) {
  BACKSTOP_RETURN_IF_ERROR(conn_->CopyOutBegin(copy_sql));
  active_ = true;
  return Status::OK();
}

Result<bool> CopyRowSource::Next(KeyedRow* row) {
  if (!active_) return false;
  BACKSTOP_ASSIGN_OR_RETURN(std::optional<std::string_view> line, conn_->CopyOutNext());
  if (!line) {
    active_ = false;
    return false;
  }
  std::vector<std::string_view> fields = SplitCopyLine(*line);
  size_t want = key_count_ + (with_hash_ ? 1 : 0);
  if (fields.size() != want) {
    return Status::Internal("COPY row from database " + conn_->dbname() + " has " +
                            std::to_string(fields.size()) + " fields, expected " +
                            std::to_string(want));
  }
  row->key.resize(key_count_);
  bool is_null = false;
  for (size_t i = 0; i < key_count_; ++i) row->key[i] = CopyUnescape(fields[i], &is_null);
  row->hash = with_hash_ ? CopyUnescape(fields[key_count_], &is_null) : std::string();
  return true;
}

Result<bool> VectorRowSource::Next(KeyedRow* row) {
  if (next_ >= rows_.size()) return false;
  *row = rows_[next_++];
  return true;
}

namespace {

int CompareInteger(const std::string& a, const std::string& b) {
  int64_t x = 0, y = 0;
  auto ra = std::from_chars(a.data(), a.data() + a.size(), x);
  auto rb = std::from_chars(b.data(), b.data() + b.size(), y);
  if (ra.ec != std::errc() || rb.ec != std::errc()) {
    // Not a 64-bit integer (numeric overflow): fall back to length then bytes,
    // which orders non-negative decimal strings by value.
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b);
  }
  return x < y ? -1 : (x > y ? 1 : 0);
}

int CompareBytes(const std::string& a, const std::string& b) {
  size_t n = std::min(a.size(), b.size());
  int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
  if (c != 0) return c < 0 ? -1 : 1;
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

}  // namespace

int CompareKeys(const std::vector<std::string>& a, const std::vector<std::string>& b,
                const std::vector<KeyKind>& kinds) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    KeyKind k = i < kinds.size() ? kinds[i] : KeyKind::kText;
    int c = k == KeyKind::kInteger ? CompareInteger(a[i], b[i]) : CompareBytes(a[i], b[i]);
    if (c != 0) return c;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

const char* RowChangeName(RowChange c) {
  switch (c) {
    case RowChange::kInserted:
      return "inserted";
    case RowChange::kDeleted:
      return "deleted";
    case RowChange::kChanged:
      return "changed";
  }
  return "?";
}

Result<MergeCounts> MergeCompare(RowSource& live, RowSource& restore_point,
                                 const std::vector<KeyKind>& kinds, bool compare_hash,
                                 const ChangeSink& sink) {
  MergeCounts counts;
  KeyedRow l, r, prev_l, prev_r;
  bool have_prev_l = false, have_prev_r = false;
  // Reads the next row of one side and checks it does not go backwards.
  auto advance = [&](RowSource& src, KeyedRow* row, KeyedRow* prev, bool* have_prev,
                     const char* side) -> Result<bool> {
    if (*have_prev) std::swap(*prev, *row);
    BACKSTOP_ASSIGN_OR_RETURN(bool more, src.Next(row));
    if (!more) return false;
    if (*have_prev && CompareKeys(prev->key, row->key, kinds) > 0) {
      return Status::Internal(std::string("the ") + side +
                              " side of the ledger comparison is not sorted by key; the "
                              "ORDER BY and the key comparison disagree");
    }
    *have_prev = true;
    return true;
  };
  BACKSTOP_ASSIGN_OR_RETURN(bool has_l, advance(live, &l, &prev_l, &have_prev_l, "live"));
  BACKSTOP_ASSIGN_OR_RETURN(bool has_r,
                            advance(restore_point, &r, &prev_r, &have_prev_r, "restore point"));
  while (has_l || has_r) {
    int c = !has_l ? 1 : (!has_r ? -1 : CompareKeys(l.key, r.key, kinds));
    if (c < 0) {
      ++counts.inserted;
      if (sink) BACKSTOP_RETURN_IF_ERROR(sink(RowChange::kInserted, l));
      BACKSTOP_ASSIGN_OR_RETURN(has_l, advance(live, &l, &prev_l, &have_prev_l, "live"));
    } else if (c > 0) {
      ++counts.deleted;
      if (sink) BACKSTOP_RETURN_IF_ERROR(sink(RowChange::kDeleted, r));
      BACKSTOP_ASSIGN_OR_RETURN(has_r,
                                advance(restore_point, &r, &prev_r, &have_prev_r, "restore point"));
    } else {
      if (compare_hash && l.hash != r.hash) {
        ++counts.changed;
        if (sink) BACKSTOP_RETURN_IF_ERROR(sink(RowChange::kChanged, l));
      } else {
        ++counts.unchanged;
      }
      BACKSTOP_ASSIGN_OR_RETURN(has_l, advance(live, &l, &prev_l, &have_prev_l, "live"));
      BACKSTOP_ASSIGN_OR_RETURN(has_r,
                                advance(restore_point, &r, &prev_r, &have_prev_r, "restore point"));
    }
  }
  return counts;
}

}  // namespace backstop::postgres
