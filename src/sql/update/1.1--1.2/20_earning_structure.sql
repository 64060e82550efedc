-- earning: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/20_earning.sql.

CREATE FUNCTION loyalty.stay_record(
    idempotency_key text,
    store_code      text,
    member_id       uuid,
    check_in        date,
    check_out       date,
    rooms           integer DEFAULT 1,
    room_revenue    numeric DEFAULT 0,
    other_revenue   numeric DEFAULT 0,
    checked_out     boolean DEFAULT true,
    occurred_at     timestamptz DEFAULT NULL,
    OUT stay_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_record_stay';
COMMENT ON FUNCTION loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) IS
    'Record a stay: points by the earning order, qualification counters at checkout, instant upgrade; idempotent';

CREATE FUNCTION loyalty.charge_record(
    idempotency_key text,
    store_code      text,
    member_id       uuid,
    amount          numeric,
    occurred_at     timestamptz DEFAULT NULL,
    OUT charge_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_record_charge';
COMMENT ON FUNCTION loyalty.charge_record(text, text, uuid, numeric, timestamptz) IS
    'Record an eligible charge outside a stay: points, base points and spend counters; idempotent';

REVOKE ALL ON FUNCTION loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.stay_record(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
REVOKE ALL ON FUNCTION loyalty.charge_record(text, text, uuid, numeric, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.charge_record(text, text, uuid, numeric, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;
