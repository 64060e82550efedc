-- Deprecated spellings of 1.1 (issue 11): every function renamed to the
-- noun_verb scheme in 1.2 keeps its old name, signature, defaults and
-- grants as a thin wrapper that calls the new function, so that an
-- application written against 1.1 still runs.  They are removed in 1.3.
-- A wrapper that gains an idempotency key passes a fresh one per call
-- (the 1.1 function had none); the store functions whose key was optional
-- do the same when it is NULL.  docs/deprecated.md lists them.

CREATE OR REPLACE FUNCTION loyalty.accrue(
    member_id uuid, store_code text, points bigint, source text, idem_key text,
    rule text DEFAULT NULL, reference text DEFAULT NULL,
    occurred_at timestamptz DEFAULT NULL, pending boolean DEFAULT false,
    activate_at timestamptz DEFAULT NULL)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_accrue($5, $1, $2, $3, $4, $6, $7, $8, $9, $10)
$$;
COMMENT ON FUNCTION loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz) IS
    'deprecated in 1.2: use loyalty.points_accrue; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.accrue(uuid, text, bigint, text, text, text, text, timestamptz, boolean, timestamptz) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.activate(
    member_id uuid, store_code text, reference text, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_activate($4, $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.activate(uuid, text, text, text) IS
    'deprecated in 1.2: use loyalty.points_activate; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.activate(uuid, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.activate(uuid, text, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.activate_due(idem_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_activate_due($1, $2)
$$;
COMMENT ON FUNCTION loyalty.activate_due(text, timestamptz) IS
    'deprecated in 1.2: use loyalty.points_activate_due; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.activate_due(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.activate_due(text, timestamptz) TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.redeem(
    member_id uuid, store_code text, points bigint, reward text, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_redeem($5, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.redeem(uuid, text, bigint, text, text) IS
    'deprecated in 1.2: use loyalty.points_redeem; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.redeem(uuid, text, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.redeem(uuid, text, bigint, text, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.redeem_cash(
    member_id uuid, store_code text, amount numeric, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_redeem_cash($4, $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.redeem_cash(uuid, text, numeric, text) IS
    'deprecated in 1.2: use loyalty.points_redeem_cash; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.redeem_cash(uuid, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.redeem_cash(uuid, text, numeric, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.reverse(
    accrual_entry uuid, store_code text, refund_amount numeric,
    original_amount numeric, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_reverse($5, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.reverse(uuid, text, numeric, numeric, text) IS
    'deprecated in 1.2: use loyalty.points_reverse; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.reverse(uuid, text, numeric, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.reverse(uuid, text, numeric, numeric, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.transfer(
    from_member uuid, to_member uuid, store_code text, points bigint, idem_key text)
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_transfer($5, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.transfer(uuid, uuid, text, bigint, text) IS
    'deprecated in 1.2: use loyalty.points_transfer; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.transfer(uuid, uuid, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.transfer(uuid, uuid, text, bigint, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.expire_points(idem_key text, as_of timestamptz DEFAULT now())
    RETURNS loyalty.ledger_result
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_expire($1, $2)
$$;
COMMENT ON FUNCTION loyalty.expire_points(text, timestamptz) IS
    'deprecated in 1.2: use loyalty.points_expire; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.expire_points(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.expire_points(text, timestamptz) TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.balance(member_id uuid) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.points_balance($1)
$$;
COMMENT ON FUNCTION loyalty.balance(uuid) IS
    'deprecated in 1.2: use loyalty.points_balance; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.balance(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.balance(uuid) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.balance_at(member_id uuid, at timestamptz) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.points_balance_at($1, $2)
$$;
COMMENT ON FUNCTION loyalty.balance_at(uuid, timestamptz) IS
    'deprecated in 1.2: use loyalty.points_balance_at; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.balance_at(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.balance_at(uuid, timestamptz) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.member_ledger(member_id uuid, max_rows integer DEFAULT 100)
    RETURNS TABLE (entry_id uuid, recorded_at timestamptz, occurred_at timestamptz,
                   store_code text, kind text, points bigint, pending_points bigint,
                   balance_after bigint, reference text, cash_amount numeric)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.points_ledger($1, $2)
$$;
COMMENT ON FUNCTION loyalty.member_ledger(uuid, integer) IS
    'deprecated in 1.2: use loyalty.points_ledger; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.member_ledger(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_ledger(uuid, integer) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;

CREATE OR REPLACE PROCEDURE loyalty.expire_points_batch(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty.points_expire_batch(as_of, batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.expire_points_batch(timestamptz, integer) IS
    'deprecated in 1.2: use loyalty.points_expire_batch; removed in 1.3';
REVOKE ALL ON PROCEDURE loyalty.expire_points_batch(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.expire_points_batch(timestamptz, integer) TO loyalty_dba, loyalty_crm;

CREATE OR REPLACE PROCEDURE loyalty.activate_due_batch(as_of timestamptz DEFAULT NULL,
    batch_size integer DEFAULT 1000)
    LANGUAGE plpgsql
AS $$
BEGIN
    CALL loyalty.points_activate_due_batch(as_of, batch_size);
END
$$;
COMMENT ON PROCEDURE loyalty.activate_due_batch(timestamptz, integer) IS
    'deprecated in 1.2: use loyalty.points_activate_due_batch; removed in 1.3';
REVOKE ALL ON PROCEDURE loyalty.activate_due_batch(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE loyalty.activate_due_batch(timestamptz, integer) TO loyalty_dba, loyalty_crm;

CREATE OR REPLACE FUNCTION loyalty.enroll(
    home_store  text,
    full_name   text,
    phone       text DEFAULT NULL,
    email       text DEFAULT NULL,
    birth_date  date DEFAULT NULL,
    gender      text DEFAULT NULL,
    nationality text DEFAULT NULL,
    time_zone   text DEFAULT NULL,
    OUT member_id uuid,
    OUT card_no text)
    RETURNS record
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.member_enroll(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4, $5, $6, $7, $8)
$$;
COMMENT ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text) IS
    'deprecated in 1.2: use loyalty.member_enroll; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.enroll(text, text, text, text, date, text, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.record_stay(
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
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.stay_record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
$$;
COMMENT ON FUNCTION loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) IS
    'deprecated in 1.2: use loyalty.stay_record; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_stay(text, text, uuid, date, date, integer, numeric, numeric, boolean, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.record_charge(
    idempotency_key text,
    store_code      text,
    member_id       uuid,
    amount          numeric,
    occurred_at     timestamptz DEFAULT NULL,
    OUT charge_id uuid, OUT replayed boolean, OUT nights_credited integer,
    OUT base_points bigint, OUT bonus_points bigint, OUT points_pending boolean,
    OUT tier text, OUT tier_changed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.charge_record($1, $2, $3, $4, $5)
$$;
COMMENT ON FUNCTION loyalty.record_charge(text, text, uuid, numeric, timestamptz) IS
    'deprecated in 1.2: use loyalty.charge_record; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.record_charge(text, text, uuid, numeric, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.record_charge(text, text, uuid, numeric, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.counters_at(member_id uuid, at timestamptz DEFAULT now(),
    OUT period_start date, OUT period_end date, OUT nights bigint, OUT stays bigint,
    OUT base_points bigint, OUT qualifying_spend numeric, OUT qualifies_for text)
    RETURNS record
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.tier_counters_at($1, $2)
$$;
COMMENT ON FUNCTION loyalty.counters_at(uuid, timestamptz) IS
    'deprecated in 1.2: use loyalty.tier_counters_at; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.counters_at(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.counters_at(uuid, timestamptz) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_marketing, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.set_risk_type(risk_code text, name text, freezes text[])
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.risk_type_set(pg_catalog.gen_random_uuid()::text, $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.set_risk_type(text, text, text[]) IS
    'deprecated in 1.2: use loyalty.risk_type_set; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.set_risk_type(text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_risk_type(text, text, text[]) TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.raise_risk_tag(
    member_id   uuid,
    store_code  text,
    risk_code   text,
    note        text,
    amount_owed numeric DEFAULT NULL)
    RETURNS uuid
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.risk_tag_raise(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4, $5)
$$;
COMMENT ON FUNCTION loyalty.raise_risk_tag(uuid, text, text, text, numeric) IS
    'deprecated in 1.2: use loyalty.risk_tag_raise; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.raise_risk_tag(uuid, text, text, text, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.raise_risk_tag(uuid, text, text, text, numeric) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.resolve_risk_tag(
    tag_id     uuid,
    resolution text,
    note       text)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.risk_tag_resolve(pg_catalog.gen_random_uuid()::text, $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.resolve_risk_tag(uuid, text, text) IS
    'deprecated in 1.2: use loyalty.risk_tag_resolve; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.resolve_risk_tag(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.resolve_risk_tag(uuid, text, text) TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.define_benefit(
    benefit_code text, name text, kind text, description text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.benefit_define(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.define_benefit(text, text, text, text) IS
    'deprecated in 1.2: use loyalty.benefit_define; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.define_benefit(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.define_benefit(text, text, text, text) TO loyalty_crm, loyalty_marketing;

CREATE OR REPLACE FUNCTION loyalty.grant_benefit(
    benefit_code text,
    source       text,
    params       jsonb DEFAULT '{}',
    min_tier     text DEFAULT NULL,
    stores       text[] DEFAULT NULL,
    campaign     text DEFAULT NULL,
    valid_from   timestamptz DEFAULT '-infinity',
    valid_until  timestamptz DEFAULT 'infinity',
    use_limit    integer DEFAULT NULL,
    limit_per    text DEFAULT NULL)
    RETURNS SETOF uuid
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.benefit_grant(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
$$;
COMMENT ON FUNCTION loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) IS
    'deprecated in 1.2: use loyalty.benefit_grant; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.grant_benefit(text, text, jsonb, text, text[], text, timestamptz, timestamptz, integer, text) TO loyalty_crm, loyalty_marketing;

CREATE OR REPLACE FUNCTION loyalty.end_benefit_grant(grant_id uuid, at timestamptz DEFAULT now())
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.benefit_grant_end(pg_catalog.gen_random_uuid()::text, $1, $2)
$$;
COMMENT ON FUNCTION loyalty.end_benefit_grant(uuid, timestamptz) IS
    'deprecated in 1.2: use loyalty.benefit_grant_end; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.end_benefit_grant(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.end_benefit_grant(uuid, timestamptz) TO loyalty_crm, loyalty_marketing;

CREATE OR REPLACE FUNCTION loyalty.use_benefit(
    member_id uuid, store_code text, benefit_code text, idempotency_key text,
    stay_id uuid DEFAULT NULL,
    OUT use_id uuid, OUT grant_id uuid, OUT params jsonb, OUT reason text,
    OUT use_number integer, OUT use_limit integer, OUT limit_per text, OUT replayed boolean)
    RETURNS record
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.benefit_use($4, $1, $2, $3, $5)
$$;
COMMENT ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid) IS
    'deprecated in 1.2: use loyalty.benefit_use; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.use_benefit(uuid, text, text, text, uuid) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.create_store(
    store_code text, name text, brand text, region text, time_zone text)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_create(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4, $5)
$$;
COMMENT ON FUNCTION loyalty.create_store(text, text, text, text, text) IS
    'deprecated in 1.2: use loyalty.store_create; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.create_store(text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.create_store(text, text, text, text, text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.create_staff(
    login text, store_code text, department text, password text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.staff_create(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.create_staff(text, text, text, text) IS
    'deprecated in 1.2: use loyalty.staff_create; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.create_staff(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.create_staff(text, text, text, text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.schedule_jobs()
    RETURNS TABLE (job_name text, schedule text, command text, jobid bigint)
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.job_schedule(pg_catalog.gen_random_uuid()::text)
$$;
COMMENT ON FUNCTION loyalty.schedule_jobs() IS
    'deprecated in 1.2: use loyalty.job_schedule; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.schedule_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.schedule_jobs() TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.unschedule_jobs() RETURNS integer
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.job_unschedule(pg_catalog.gen_random_uuid()::text)
$$;
COMMENT ON FUNCTION loyalty.unschedule_jobs() IS
    'deprecated in 1.2: use loyalty.job_unschedule; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.unschedule_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.unschedule_jobs() TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.scheduled_jobs()
    RETURNS TABLE (jobid bigint, job_name text, schedule text, command text, run_as text,
                   active boolean, last_status text, last_start timestamptz, last_message text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM loyalty.job_scheduled()
$$;
COMMENT ON FUNCTION loyalty.scheduled_jobs() IS
    'deprecated in 1.2: use loyalty.job_scheduled; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.scheduled_jobs() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.scheduled_jobs() TO loyalty_crm, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.new_card_number() RETURNS text
    LANGUAGE sql VOLATILE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.card_number_new()
$$;
COMMENT ON FUNCTION loyalty.new_card_number() IS
    'deprecated in 1.2: use loyalty.card_number_new; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.new_card_number() FROM PUBLIC;

CREATE OR REPLACE FUNCTION loyalty.store_raise_risk_tag(
    member_id uuid, risk_code text, note text, amount_owed numeric DEFAULT NULL,
    idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_risk_tag_raise(coalesce($5, pg_catalog.gen_random_uuid()::text), $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.store_raise_risk_tag(uuid, text, text, numeric, text) IS
    'deprecated in 1.2: use loyalty.store_risk_tag_raise; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_raise_risk_tag(uuid, text, text, numeric, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_raise_risk_tag(uuid, text, text, numeric, text) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.store_use_benefit(
    member_id uuid, benefit text, detail jsonb DEFAULT '{}', idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_benefit_use(coalesce($4, pg_catalog.gen_random_uuid()::text), $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.store_use_benefit(uuid, text, jsonb, text) IS
    'deprecated in 1.2: use loyalty.store_benefit_use; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_use_benefit(uuid, text, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_use_benefit(uuid, text, jsonb, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.store_record_preference(
    member_id uuid, category text, value text, scope text DEFAULT 'chain', idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_preference_record(coalesce($5, pg_catalog.gen_random_uuid()::text), $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.store_record_preference(uuid, text, text, text, text) IS
    'deprecated in 1.2: use loyalty.store_preference_record; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_record_preference(uuid, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_record_preference(uuid, text, text, text, text) TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.store_accrue(
    member_id uuid, points bigint, source text DEFAULT 'stay', reference text DEFAULT NULL,
    idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_points_accrue(coalesce($5, pg_catalog.gen_random_uuid()::text), $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.store_accrue(uuid, bigint, text, text, text) IS
    'deprecated in 1.2: use loyalty.store_points_accrue; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_accrue(uuid, bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_accrue(uuid, bigint, text, text, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.store_redeem(
    member_id uuid, points bigint, reward text, idem_key text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_points_redeem(coalesce($4, pg_catalog.gen_random_uuid()::text), $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.store_redeem(uuid, bigint, text, text) IS
    'deprecated in 1.2: use loyalty.store_points_redeem; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_redeem(uuid, bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_redeem(uuid, bigint, text, text) TO loyalty_frontdesk, loyalty_fnb, loyalty_store_manager, loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_add_store(
    store_code text, offline_redeem_cap bigint DEFAULT 5000, via_hub text DEFAULT NULL)
    RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_store_add(pg_catalog.gen_random_uuid()::text, $1, $2, $3)
$$;
COMMENT ON FUNCTION loyalty.replica_add_store(text, bigint, text) IS
    'deprecated in 1.2: use loyalty.replica_store_add; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_add_store(text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_add_store(text, bigint, text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_add_hub(hub_code text) RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_hub_add(pg_catalog.gen_random_uuid()::text, $1)
$$;
COMMENT ON FUNCTION loyalty.replica_add_hub(text) IS
    'deprecated in 1.2: use loyalty.replica_hub_add; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_add_hub(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_add_hub(text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_remove_store(store_code text, force boolean DEFAULT false)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_store_remove(pg_catalog.gen_random_uuid()::text, $1, $2)
$$;
COMMENT ON FUNCTION loyalty.replica_remove_store(text, boolean) IS
    'deprecated in 1.2: use loyalty.replica_store_remove; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_remove_store(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_remove_store(text, boolean) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_set_mode(
    store_code text, mode text, window_start time DEFAULT NULL, window_end time DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_mode_set(pg_catalog.gen_random_uuid()::text, $1, $2, $3, $4)
$$;
COMMENT ON FUNCTION loyalty.replica_set_mode(text, text, time, time) IS
    'deprecated in 1.2: use loyalty.replica_mode_set; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_set_mode(text, text, time, time) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_set_mode(text, text, time, time) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_set_offline_cap(store_code text, points bigint) RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_offline_cap_set(pg_catalog.gen_random_uuid()::text, $1, $2)
$$;
COMMENT ON FUNCTION loyalty.replica_set_offline_cap(text, bigint) IS
    'deprecated in 1.2: use loyalty.replica_offline_cap_set; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_set_offline_cap(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_set_offline_cap(text, bigint) TO loyalty_dba, loyalty_crm;

CREATE OR REPLACE FUNCTION loyalty.replica_create_slot(store_code text) RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_slot_create($1)
$$;
COMMENT ON FUNCTION loyalty.replica_create_slot(text) IS
    'deprecated in 1.2: use loyalty.replica_slot_create; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_create_slot(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_create_slot(text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.replica_attach_outbox(store_code text, store_conninfo text) RETURNS text
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.replica_outbox_attach(pg_catalog.gen_random_uuid()::text, $1, $2)
$$;
COMMENT ON FUNCTION loyalty.replica_attach_outbox(text, text) IS
    'deprecated in 1.2: use loyalty.replica_outbox_attach; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.replica_attach_outbox(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_attach_outbox(text, text) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.store_prune_outbox(keep interval DEFAULT '30 days') RETURNS bigint
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.store_outbox_prune(pg_catalog.gen_random_uuid()::text, $1)
$$;
COMMENT ON FUNCTION loyalty.store_prune_outbox(interval) IS
    'deprecated in 1.2: use loyalty.store_outbox_prune; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.store_prune_outbox(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.store_prune_outbox(interval) TO loyalty_dba;

CREATE OR REPLACE FUNCTION loyalty.regenerate_views() RETURNS integer
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT loyalty.views_regenerate()
$$;
COMMENT ON FUNCTION loyalty.regenerate_views() IS
    'deprecated in 1.2: use loyalty.views_regenerate; removed in 1.3';
REVOKE ALL ON FUNCTION loyalty.regenerate_views() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.regenerate_views() TO loyalty_crm, loyalty_dba;
