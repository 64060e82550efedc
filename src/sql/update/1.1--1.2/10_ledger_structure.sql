-- ledger: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/10_ledger.sql.

CREATE FUNCTION loyalty.points_accrue(
    idempotency_key text, member_id uuid, store_code text, points bigint, source text,
    rule text DEFAULT NULL, reference text DEFAULT NULL,
    occurred_at timestamptz DEFAULT NULL, pending boolean DEFAULT false,
    activate_at timestamptz DEFAULT NULL)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_accrue';
COMMENT ON FUNCTION loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz) IS
    'Credit points to a member at a store (one entry, one lot; pending lots count once activated)';

CREATE FUNCTION loyalty.points_activate(
    idempotency_key text, member_id uuid, store_code text, reference text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_activate';
COMMENT ON FUNCTION loyalty.points_activate(text, uuid, text, text) IS
    'Activate a member''s pending points with this reference (e.g. a stay at checkout)';

CREATE FUNCTION loyalty.points_activate_due(idempotency_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_activate_due';
COMMENT ON FUNCTION loyalty.points_activate_due(text, timestamptz) IS
    'Batch: activate every pending lot whose activate_at has passed';

CREATE FUNCTION loyalty.points_redeem(
    idempotency_key text, member_id uuid, store_code text, points bigint, reward text)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_redeem';
COMMENT ON FUNCTION loyalty.points_redeem(text, uuid, text, bigint, text) IS
    'Redeem points for a reward (minimum and step of the policy)';

CREATE FUNCTION loyalty.points_redeem_cash(
    idempotency_key text, member_id uuid, store_code text, amount numeric)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_redeem_cash';
COMMENT ON FUNCTION loyalty.points_redeem_cash(text, uuid, text, numeric) IS
    'Pay amount of a bill with points at the program''s single rate';

CREATE FUNCTION loyalty.points_reverse(
    idempotency_key text, accrual_entry uuid, store_code text, refund_amount numeric,
    original_amount numeric)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_reverse';
COMMENT ON FUNCTION loyalty.points_reverse(text, uuid, text, numeric, numeric) IS
    'Take back an accrual''s points in proportion to a refund';

CREATE FUNCTION loyalty.points_transfer(
    idempotency_key text, from_member uuid, to_member uuid, store_code text, points bigint)
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_points_transfer';
COMMENT ON FUNCTION loyalty.points_transfer(text, uuid, uuid, text, bigint) IS
    'Move points between members (keeps expiry dates; yearly caps)';

CREATE FUNCTION loyalty.points_expire(idempotency_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_points';
COMMENT ON FUNCTION loyalty.points_expire(text, timestamptz) IS
    'Batch: emit expiry notices and expire the points due at as_of';

CREATE FUNCTION loyalty._redemption_check(points bigint) RETURNS void
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'loyalty_redemption_check';

CREATE FUNCTION loyalty.points_balance(member_id uuid) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT b.balance FROM loyalty.point_balance b WHERE b.member_id = $1), 0) END
$$;
COMMENT ON FUNCTION loyalty.points_balance(uuid) IS 'A member''s active points now (NULL for an unknown member)';

CREATE FUNCTION loyalty.points_balance_at(member_id uuid, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM loyalty.member m WHERE m.member_id = $1)
                THEN NULL
                ELSE coalesce((SELECT sum(e.points) FROM loyalty.point_entry e
                                WHERE e.member_id = $1 AND e.recorded_at <= $2), 0)::bigint END
$$;
COMMENT ON FUNCTION loyalty.points_balance_at(uuid, timestamptz) IS
    'A member''s active points as recorded at a past time (sum of entries recorded until then)';

CREATE FUNCTION loyalty.points_ledger(member_id uuid, max_rows integer DEFAULT 100)
    RETURNS TABLE (entry_id uuid, recorded_at timestamptz, occurred_at timestamptz,
                   store_code text, kind text, points bigint, pending_points bigint,
                   balance_after bigint, reference text, cash_amount numeric)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.entry_id, e.recorded_at, e.occurred_at, e.store_code, e.kind, e.points,
           e.pending_points, e.balance_after, e.reference, e.cash_amount
      FROM loyalty.point_entry e
     WHERE e.member_id = $1
       -- transactions are store-scoped: a store sees its own, HQ all
       AND (loyalty.caller_is_hq() OR e.store_code = loyalty.caller_store())
     ORDER BY e.recorded_at DESC, e.balance_after
     LIMIT least(greatest($2, 0), 1000)
$$;
COMMENT ON FUNCTION loyalty.points_ledger(uuid, integer) IS 'A member''s latest ledger entries (statement); store staff see their own store''s entries only';

REVOKE ALL ON FUNCTION loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_accrue(text, uuid, text, bigint, text, text, text, timestamptz, boolean, timestamptz) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_activate(text, uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_activate(text, uuid, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_activate_due(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_activate_due(text, timestamptz) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_redeem(text, uuid, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_redeem(text, uuid, text, bigint, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_redeem_cash(text, uuid, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_redeem_cash(text, uuid, text, numeric) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_reverse(text, uuid, text, numeric, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_reverse(text, uuid, text, numeric, numeric) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_transfer(text, uuid, uuid, text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_transfer(text, uuid, uuid, text, bigint) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_expire(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_expire(text, timestamptz) TO loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_balance(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_balance(uuid) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_balance_at(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_balance_at(uuid, timestamptz) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.points_ledger(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.points_ledger(uuid, integer) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty._redemption_check(bigint) FROM PUBLIC;
