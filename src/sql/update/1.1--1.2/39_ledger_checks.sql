-- ledger: one CHECK constraint per table, calling one C function, instead
-- of one per condition (issue 19): PostgreSQL rebuilds every CHECK
-- constraint from its stored text at each INSERT statement, at a cost
-- that grows with the expression.  The same conditions (with
-- point_entry_kind_valid and point_lot_source_valid as 35_reward.sql
-- redefines them); src/ledger_rowcheck.c.  Adding the constraints reads
-- both tables once.
\ir 09_ledger_rowcheck.sql
ALTER TABLE loyalty.point_entry
    DROP CONSTRAINT point_entry_kind_valid,
    DROP CONSTRAINT point_entry_reference_length,
    DROP CONSTRAINT point_entry_note_length,
    ADD CONSTRAINT point_entry_valid CHECK (loyalty._entry_row_valid(kind, reference, note));
ALTER TABLE loyalty.point_lot
    DROP CONSTRAINT point_lot_source_valid,
    DROP CONSTRAINT point_lot_rule_length,
    DROP CONSTRAINT point_lot_reference_length,
    DROP CONSTRAINT point_lot_points_nonnegative,
    DROP CONSTRAINT point_lot_state_valid,
    DROP CONSTRAINT point_lot_remaining_range,
    DROP CONSTRAINT point_lot_active_has_start,
    ADD CONSTRAINT point_lot_valid CHECK
        (loyalty._lot_row_valid(source, state, rule, reference, points, remaining, active_from));
