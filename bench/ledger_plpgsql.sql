-- The honest competitor of the ledger's C path (issue 19): the plain
-- PL/pgSQL lot ledger a user would write without the extension.  Same
-- shape as loyalty's ledger: an entry, a lot and a balance row per
-- accrual, an idempotency key per call (a replay returns the first
-- answer), the member's balance row locked first, the member's status and
-- the store checked, redemption drawing soonest-expiring lots first with a
-- draw row per lot, no overdraw.  What it leaves out, it leaves out for
-- every call alike: no policy (fixed 24-month lifetime, minimum 100, step
-- 100), no risk tags, no deficit lots, no inactivity notices, no row
-- security, no audit.
--
-- Loaded by bench/ledger_compare.sh into the bench database, after
-- loyalty's members and stores exist (it copies them).

CREATE SCHEMA plain;

CREATE TABLE plain.store (store_code text PRIMARY KEY);
CREATE TABLE plain.member (member_id uuid PRIMARY KEY, status text NOT NULL);
CREATE TABLE plain.balance (
    member_id        uuid PRIMARY KEY REFERENCES plain.member,
    balance          bigint NOT NULL DEFAULT 0,
    last_activity_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80);
CREATE TABLE plain.entry (
    entry_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL,
    store_code    text NOT NULL,
    kind          text NOT NULL,
    points        bigint NOT NULL,
    balance_after bigint NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    reference     text
);
CREATE INDEX ON plain.entry (member_id, recorded_at);
CREATE TABLE plain.lot (
    lot_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id  uuid NOT NULL,
    store_code text NOT NULL,
    source     text NOT NULL,
    points     bigint NOT NULL,
    remaining  bigint NOT NULL CHECK (remaining BETWEEN 0 AND points),
    earned_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    entry_id   uuid NOT NULL
);
-- what a user would index: the member's lots that still hold points
CREATE INDEX lot_spend_idx ON plain.lot (member_id, expires_at, earned_at, lot_id) WHERE remaining > 0;
CREATE TABLE plain.draw (
    entry_id uuid NOT NULL,
    lot_id   uuid NOT NULL,
    points   bigint NOT NULL,
    PRIMARY KEY (entry_id, lot_id)
);
CREATE TABLE plain.request (
    idem_key  text PRIMARY KEY,
    operation text NOT NULL,
    args      text NOT NULL,
    entry_id  uuid NOT NULL,
    balance   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- lock the member's balance row (created on first use), check the member
CREATE FUNCTION plain.lock_member(p_member uuid, p_spending boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    b bigint;
    st text;
BEGIN
    SELECT balance INTO b FROM plain.balance WHERE member_id = p_member FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        INSERT INTO plain.balance (member_id) VALUES (p_member) ON CONFLICT DO NOTHING;
        SELECT balance INTO b FROM plain.balance WHERE member_id = p_member FOR NO KEY UPDATE;
    END IF;
    SELECT status INTO st FROM plain.member WHERE member_id = p_member;
    IF st IS NULL THEN
        RAISE EXCEPTION 'member % does not exist', p_member USING ERRCODE = 'no_data_found';
    ELSIF st = 'closed' OR (p_spending AND st = 'suspended') THEN
        RAISE EXCEPTION 'member % is %', p_member, st USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN b;
END $$;

CREATE FUNCTION plain.accrue(p_key text, p_member uuid, p_store text, p_points bigint, p_source text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_args text := format('%s %s %s %s', p_member, p_store, p_points, p_source);
    r plain.request;
    b bigint;
    e uuid;
BEGIN
    IF p_points IS NULL OR p_points <= 0 THEN
        RAISE EXCEPTION 'points must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM plain.store WHERE store_code = p_store;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % does not exist', p_store USING ERRCODE = 'no_data_found';
    END IF;
    b := plain.lock_member(p_member, false);
    SELECT * INTO r FROM plain.request WHERE idem_key = p_key;
    IF FOUND THEN
        IF r.operation <> 'accrue' OR r.args <> v_args THEN
            RAISE EXCEPTION 'idempotency key % was already used', p_key USING ERRCODE = 'unique_violation';
        END IF;
        RETURN r.balance;
    END IF;
    b := b + p_points;
    INSERT INTO plain.entry (member_id, store_code, kind, points, balance_after)
        VALUES (p_member, p_store, 'accrue', p_points, b) RETURNING entry_id INTO e;
    INSERT INTO plain.lot (member_id, store_code, source, points, remaining, earned_at, expires_at, entry_id)
        VALUES (p_member, p_store, p_source, p_points, p_points, now(),
                date_trunc('month', now()) + interval '25 months', e);
    UPDATE plain.balance SET balance = b, last_activity_at = now(), updated_at = now()
        WHERE member_id = p_member;
    INSERT INTO plain.request (idem_key, operation, args, entry_id, balance)
        VALUES (p_key, 'accrue', v_args, e, b);
    RETURN b;
END $$;

CREATE FUNCTION plain.redeem(p_key text, p_member uuid, p_store text, p_points bigint, p_reward text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_args text := format('%s %s %s %s', p_member, p_store, p_points, p_reward);
    r plain.request;
    b bigint;
    e uuid;
    left_ bigint := p_points;
    take bigint;
    l record;
BEGIN
    IF p_points IS NULL OR p_points < 100 OR p_points % 100 <> 0 THEN
        RAISE EXCEPTION 'redemption must be a positive multiple of 100' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM plain.store WHERE store_code = p_store;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'store % does not exist', p_store USING ERRCODE = 'no_data_found';
    END IF;
    b := plain.lock_member(p_member, true);
    SELECT * INTO r FROM plain.request WHERE idem_key = p_key;
    IF FOUND THEN
        IF r.operation <> 'redeem' OR r.args <> v_args THEN
            RAISE EXCEPTION 'idempotency key % was already used', p_key USING ERRCODE = 'unique_violation';
        END IF;
        RETURN r.balance;
    END IF;
    IF b < p_points THEN
        RAISE EXCEPTION 'insufficient points' USING ERRCODE = 'check_violation';
    END IF;
    b := b - p_points;
    INSERT INTO plain.entry (member_id, store_code, kind, points, balance_after, reference)
        VALUES (p_member, p_store, 'redeem', -p_points, b, p_reward) RETURNING entry_id INTO e;
    FOR l IN SELECT lot_id, remaining FROM plain.lot
              WHERE member_id = p_member AND remaining > 0
              ORDER BY expires_at, earned_at, lot_id LOOP
        take := least(l.remaining, left_);
        INSERT INTO plain.draw (entry_id, lot_id, points) VALUES (e, l.lot_id, take);
        UPDATE plain.lot SET remaining = remaining - take WHERE lot_id = l.lot_id;
        left_ := left_ - take;
        EXIT WHEN left_ = 0;
    END LOOP;
    IF left_ > 0 THEN
        RAISE EXCEPTION 'lots of member % hold less than the balance', p_member;
    END IF;
    UPDATE plain.balance SET balance = b, last_activity_at = now(), updated_at = now()
        WHERE member_id = p_member;
    INSERT INTO plain.request (idem_key, operation, args, entry_id, balance)
        VALUES (p_key, 'redeem', v_args, e, b);
    RETURN b;
END $$;
