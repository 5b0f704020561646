#include "drivers/postgres/pg_sequences.h"

namespace backstop::postgres {

Result<std::vector<SequencePosition>> ReadSequencePositions(PgConn& conn) {
  BACKSTOP_ASSIGN_OR_RETURN(
      PgResult seqs,
      conn.Exec("SELECT n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'S' "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1, 2"));
  std::vector<SequencePosition> out;
  for (int i = 0; i < seqs.rows(); ++i) {
    SequencePosition p{seqs.Get(i, 0), seqs.Get(i, 1), 0, false};
    // pg_sequences hides is_called; the sequence relation itself has it.
    BACKSTOP_ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT last_value, is_called FROM " +
                                                    QuoteQualified(p.schema, p.name)));
    if (r.rows() != 1) {
      return Status::Internal("sequence " + QuoteQualified(p.schema, p.name) + " read " +
                              std::to_string(r.rows()) + " rows");
    }
    p.last_value = r.GetInt(0, 0);
    p.is_called = r.Get(0, 1) == "t";
    out.push_back(std::move(p));
  }
  return out;
}

Status RewindSequences(PgConn& conn, const std::vector<SequencePosition>& positions) {
  for (const SequencePosition& p : positions) {
    const std::string name = QuoteQualified(p.schema, p.name);
    BACKSTOP_ASSIGN_OR_RETURN(std::string exists,
                              conn.Value("SELECT to_regclass($1) IS NOT NULL", {name}));
    if (exists != "t") {
      return Status::NotFound("sequence " + name +
                              " no longer exists, so it cannot be set back to " +
                              std::to_string(p.last_value) + "; recreate it or restore the dump");
    }
    BACKSTOP_RETURN_IF_ERROR(conn.Run(
        "SELECT setval($1::regclass, $2::bigint, $3::boolean)",
        {name, std::to_string(p.last_value), std::string(p.is_called ? "true" : "false")}));
  }
  return Status::OK();
}

}  // namespace backstop::postgres
