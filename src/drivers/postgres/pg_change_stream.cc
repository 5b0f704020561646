#include "drivers/postgres/pg_change_stream.h"

#include <charconv>

#include "base/units.h"

namespace backstop::postgres {
namespace {

// A cursor over one row's text; every Expect/Read says what it wanted.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}

  bool AtEnd() const { return pos_ >= s_.size(); }
  size_t pos() const { return pos_; }
  char Peek() const { return AtEnd() ? '\0' : s_[pos_]; }
  bool LookingAt(std::string_view word) const { return s_.substr(pos_).starts_with(word); }
  bool Consume(std::string_view word) {
    if (!LookingAt(word)) return false;
    pos_ += word.size();
    return true;
  }
  Status Expect(std::string_view word) {
    if (Consume(word)) return Status::OK();
    return Error("expected \"" + std::string(word) + "\"");
  }

  // An identifier as quote_identifier prints it: "..." with "" doubled, or
  // bare up to one of `stops`.
  Result<std::string> ReadIdent(std::string_view stops) {
    std::string out;
    if (Consume("\"")) {
      while (true) {
        if (AtEnd()) return Error("unterminated quoted identifier");
        char c = s_[pos_++];
        if (c != '"') {
          out += c;
        } else if (Consume("\"")) {
          out += '"';
        } else {
          return out;
        }
      }
    }
    while (!AtEnd() && stops.find(s_[pos_]) == std::string_view::npos) out += s_[pos_++];
    if (out.empty()) return Error("expected an identifier");
    return out;
  }

  // A type name up to the "]:" that closes it; "integer[]" and quoted parts
  // such as `public."a]:b"` stay whole.
  Result<std::string> ReadTypeName() {
    size_t start = pos_;
    bool quoted = false;
    for (; pos_ < s_.size(); ++pos_) {
      char c = s_[pos_];
      if (c == '"') quoted = !quoted;
      if (!quoted && c == ']' && pos_ + 1 < s_.size() && s_[pos_ + 1] == ':') {
        std::string type(s_.substr(start, pos_ - start));
        pos_ += 2;
        if (type.empty()) return Error("empty type name");
        return type;
      }
    }
    pos_ = start;
    return Error("expected a type name closed by \"]:\"");
  }

  // '...' with '' doubled; the cursor is on the opening quote.
  Result<std::string> ReadQuoted() {
    std::string out;
    ++pos_;
    while (true) {
      if (AtEnd()) return Error("unterminated quoted value");
      char c = s_[pos_++];
      if (c != '\'') {
        out += c;
      } else if (Consume("'")) {
        out += '\'';
      } else {
        return out;
      }
    }
  }

  // Up to the next space or the end.
  std::string ReadBare() {
    size_t start = pos_;
    while (!AtEnd() && s_[pos_] != ' ') ++pos_;
    return std::string(s_.substr(start, pos_ - start));
  }

  Status Error(const std::string& what) const {
    std::string excerpt(s_.substr(pos_, 60));
    if (pos_ + 60 < s_.size()) excerpt += "...";
    return Status::InvalidArgument(what + " at offset " + std::to_string(pos_) + " (before \"" +
                                   excerpt + "\")");
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
};

bool AtWordEnd(const Cursor& c, std::string_view word) {
  if (!c.LookingAt(word)) return false;
  Cursor after = c;
  (void)after.Consume(word);
  return after.AtEnd() || after.Peek() == ' ';
}

Result<StreamColumn> ReadColumn(Cursor& c) {
  StreamColumn col;
  BACKSTOP_ASSIGN_OR_RETURN(col.name, c.ReadIdent("["));
  BACKSTOP_RETURN_IF_ERROR(c.Expect("["));
  BACKSTOP_ASSIGN_OR_RETURN(col.type, c.ReadTypeName());
  if (AtWordEnd(c, "null")) {
    (void)c.Consume("null");
  } else if (AtWordEnd(c, "unchanged-toast-datum")) {
    (void)c.Consume("unchanged-toast-datum");
    col.unchanged_toast = true;
  } else if (c.Peek() == '\'') {
    BACKSTOP_ASSIGN_OR_RETURN(col.value, c.ReadQuoted());
  } else if (c.LookingAt("B'")) {  // bit and bit varying: B'0101'
    (void)c.Consume("B");
    BACKSTOP_ASSIGN_OR_RETURN(col.value, c.ReadQuoted());
  } else {  // numbers and booleans are printed bare
    col.value = c.ReadBare();
    if (col.value->empty()) return c.Error("expected a value for column " + col.name);
  }
  return col;
}

// Columns up to the end of the row, or up to " new-tuple:" when `in_old`.
// Each column is preceded by one space.
Result<std::vector<StreamColumn>> ReadColumns(Cursor& c, bool in_old) {
  std::vector<StreamColumn> cols;
  while (!c.AtEnd()) {
    if (in_old && c.LookingAt(" new-tuple:")) break;
    BACKSTOP_RETURN_IF_ERROR(c.Expect(" "));
    BACKSTOP_ASSIGN_OR_RETURN(StreamColumn col, ReadColumn(c));
    cols.push_back(std::move(col));
  }
  return cols;
}

Result<std::pair<std::string, std::string>> ReadQualifiedName(Cursor& c) {
  BACKSTOP_ASSIGN_OR_RETURN(std::string schema, c.ReadIdent(".:, "));
  BACKSTOP_RETURN_IF_ERROR(c.Expect("."));
  BACKSTOP_ASSIGN_OR_RETURN(std::string table, c.ReadIdent(":, "));
  return std::make_pair(std::move(schema), std::move(table));
}

Result<uint32_t> ReadXid(std::string_view text) {
  uint32_t xid = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), xid);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Status::InvalidArgument("expected a transaction id, got \"" + std::string(text) + "\"");
  }
  return xid;
}

Status RowError(size_t index, const StreamRow& row, const Status& st) {
  return Status::InvalidArgument("change stream row " + std::to_string(index + 1) + " (lsn " +
                                 row.lsn + "): " + st.message());
}

}  // namespace

const char* ChangeOpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kInsert:
      return "INSERT";
    case ChangeOp::kUpdate:
      return "UPDATE";
    case ChangeOp::kDelete:
      return "DELETE";
    case ChangeOp::kTruncate:
      return "TRUNCATE";
    case ChangeOp::kMessage:
      return "message";
  }
  return "?";
}

Result<std::vector<Change>> ParseTableRow(std::string_view data) {
  Cursor c(data);
  Change ch;
  BACKSTOP_RETURN_IF_ERROR(c.Expect("table "));
  BACKSTOP_ASSIGN_OR_RETURN(auto name, ReadQualifiedName(c));
  ch.schema = std::move(name.first);
  ch.table = std::move(name.second);
  if (c.LookingAt(", ") || c.LookingAt(": TRUNCATE:")) {
    // One TRUNCATE names every table it emptied: one change each.
    ch.op = ChangeOp::kTruncate;
    ch.text = std::string(data);
    std::vector<Change> out = {ch};
    while (c.Consume(", ")) {
      BACKSTOP_ASSIGN_OR_RETURN(auto next, ReadQualifiedName(c));
      out.push_back(ch);
      out.back().schema = std::move(next.first);
      out.back().table = std::move(next.second);
    }
    BACKSTOP_RETURN_IF_ERROR(c.Expect(": TRUNCATE:"));
    return out;
  }
  BACKSTOP_RETURN_IF_ERROR(c.Expect(": "));
  if (c.Consume("INSERT:")) {
    ch.op = ChangeOp::kInsert;
  } else if (c.Consume("UPDATE:")) {
    ch.op = ChangeOp::kUpdate;
  } else if (c.Consume("DELETE:")) {
    ch.op = ChangeOp::kDelete;
  } else {
    return c.Error("expected INSERT:, UPDATE:, DELETE: or TRUNCATE:");
  }
  if (c.Consume(" (no-tuple-data)")) {
    if (!c.AtEnd()) return c.Error("expected the end after (no-tuple-data)");
    return std::vector<Change>{ch};
  }
  if (ch.op == ChangeOp::kInsert) {
    ch.has_new = true;
    BACKSTOP_ASSIGN_OR_RETURN(ch.new_columns, ReadColumns(c, false));
  } else if (ch.op == ChangeOp::kUpdate) {
    if (c.Consume(" old-key:")) {
      ch.has_old = true;
      BACKSTOP_ASSIGN_OR_RETURN(ch.old_columns, ReadColumns(c, true));
      BACKSTOP_RETURN_IF_ERROR(c.Expect(" new-tuple:"));
    }
    if (c.Consume(" (no-tuple-data)")) {
      if (!c.AtEnd()) return c.Error("expected the end after (no-tuple-data)");
      return std::vector<Change>{ch};
    }
    ch.has_new = true;
    BACKSTOP_ASSIGN_OR_RETURN(ch.new_columns, ReadColumns(c, false));
  } else {
    ch.has_old = true;
    BACKSTOP_ASSIGN_OR_RETURN(ch.old_columns, ReadColumns(c, false));
  }
  return std::vector<Change>{ch};
}

Result<ChangeStream> ParseChangeStream(const std::vector<StreamRow>& rows) {
  ChangeStream out;
  std::optional<Transaction> open;
  for (size_t i = 0; i < rows.size(); ++i) {
    const StreamRow& row = rows[i];
    std::string_view data = row.data;
    if (data.starts_with("BEGIN")) {
      if (open) return RowError(i, row, Status::InvalidArgument("BEGIN inside a transaction"));
      std::string_view rest = data.substr(5);
      if (!rest.starts_with(" ")) {
        return RowError(i, row,
                        Status::InvalidArgument("BEGIN without a transaction id; peek the slot "
                                                "with 'include-xids', '1'"));
      }
      auto xid = ReadXid(rest.substr(1));
      if (!xid.ok()) return RowError(i, row, xid.status());
      open.emplace();
      open->xid = *xid;
    } else if (data.starts_with("COMMIT")) {
      if (!open) return RowError(i, row, Status::InvalidArgument("COMMIT outside a transaction"));
      size_t at = data.find(" (at ");
      if (at == std::string_view::npos || !data.ends_with(")")) {
        return RowError(i, row,
                        Status::InvalidArgument("COMMIT without a commit time; peek the slot "
                                                "with 'include-timestamp', '1'"));
      }
      auto xid = ReadXid(data.substr(7, at > 7 ? at - 7 : 0));
      if (!xid.ok()) return RowError(i, row, xid.status());
      if (*xid != open->xid) {
        return RowError(
            i, row,
            Status::InvalidArgument("COMMIT of transaction " + std::to_string(*xid) +
                                    " inside transaction " + std::to_string(open->xid)));
      }
      std::string_view when = data.substr(at + 5, data.size() - at - 6);
      auto micros = ParseTimestamp(when);
      if (!micros) {
        return RowError(
            i, row,
            Status::InvalidArgument("unreadable commit time \"" + std::string(when) + "\""));
      }
      open->commit_wall_micros = *micros;
      open->commit_lsn = row.lsn;
      out.transactions.push_back(std::move(*open));
      open.reset();
    } else if (data.starts_with("message:")) {
      if (open) {
        Change ch;
        ch.op = ChangeOp::kMessage;
        ch.text = row.data;
        ch.lsn = row.lsn;
        open->changes.push_back(std::move(ch));
      } else {
        out.loose_messages.push_back(row.data);
      }
    } else if (data.starts_with("table ")) {
      if (!open) return RowError(i, row, Status::InvalidArgument("change outside a transaction"));
      auto changes = ParseTableRow(data);
      if (!changes.ok()) return RowError(i, row, changes.status());
      for (Change& ch : *changes) {
        ch.lsn = row.lsn;
        open->changes.push_back(std::move(ch));
      }
    } else {
      std::string head(data.substr(0, 60));
      return RowError(
          i, row,
          Status::InvalidArgument("not a test_decoding row this parser knows: \"" + head + "\""));
    }
  }
  if (open) {
    return Status::InvalidArgument("change stream: transaction " + std::to_string(open->xid) +
                                   " has no COMMIT row (the rows end inside it)");
  }
  return out;
}

}  // namespace backstop::postgres
