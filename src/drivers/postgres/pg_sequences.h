// Sequence positions: read at a restore point, set back by a flashback.
//
// Sequences are not transactional and their changes are not in a logical
// slot's stream, so flashback records where each stood and rewinds it with
// setval. setval takes effect at once and is not undone by a ROLLBACK: call
// RewindSequences after the undo has committed.
//
// Thread-safety: none; one thread per connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "drivers/postgres/pg_conn.h"

namespace backstop::postgres {

struct SequencePosition {
  std::string schema;  // unquoted
  std::string name;
  int64_t last_value = 0;
  bool is_called = false;  // false: the next nextval returns last_value itself

  bool operator==(const SequencePosition&) const = default;
};

// Every sequence of the database outside the system schemas, sorted by
// schema and name.
Result<std::vector<SequencePosition>> ReadSequencePositions(PgConn& conn);

// setval of each to its position. NotFound naming the sequence when one no
// longer exists (nothing after it is set).
Status RewindSequences(PgConn& conn, const std::vector<SequencePosition>& positions);

}  // namespace backstop::postgres
