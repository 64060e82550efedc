-- ledger: the row checks of point_lot and point_entry (issue 19).
--
-- The conditions of the CHECK constraints of point_lot and point_entry, in
-- C (src/ledger_rowcheck.c): PostgreSQL rebuilds a CHECK constraint from
-- its stored text at every INSERT statement, at a cost that grows with the
-- expression; a function call on the row's columns is cheap to rebuild
-- (issue 19).  The conditions are spelled out where the tables are.
CREATE FUNCTION loyalty._lot_row_valid(source text, state text, rule text, reference text,
    points bigint, remaining bigint, active_from timestamptz) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_lot_row_valid';
COMMENT ON FUNCTION loyalty._lot_row_valid(text, text, text, text, bigint, bigint, timestamptz) IS
    'The CHECK of loyalty.point_lot (source, state, lengths, remaining within points, a start once active)';
CREATE FUNCTION loyalty._entry_row_valid(kind text, reference text, note text) RETURNS boolean
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'loyalty_entry_row_valid';
COMMENT ON FUNCTION loyalty._entry_row_valid(text, text, text) IS
    'The CHECK of loyalty.point_entry (kind, lengths of reference and note)';
REVOKE ALL ON FUNCTION loyalty._lot_row_valid(text, text, text, text, bigint, bigint, timestamptz),
    loyalty._entry_row_valid(text, text, text) FROM PUBLIC;
