-- What a store's replica receives, and who may receive it (issues 12.3,
-- 14.7, 14.9; docs/replication.md "What a store holds", docs/operations.md
-- "Replication logins").
--
-- PG15 publications have no ACL and a column list cannot differ per row, so
-- what a store may not hold is kept out of its publication physically:
--   * contact data reaches stores only through loyalty.replica_member_contact
--     (masked phone and email, a keyed hash of the phone for exact lookup,
--     birth month and day), maintained at HQ by a trigger on member_profile;
--     member_profile itself is never published;
--   * risk-tag notes reach only the store that raised the tag, through
--     loyalty.replica_risk_note (store code in its key, row-filtered);
--     risk_tag is published without its notes;
--   * behaviour tags reach only the store that tagged them (member_tag is
--     row-filtered on store_code).
-- Replication logins are members of loyalty_replication and mapped to one
-- store in loyalty.replica_login; row level security lets such a login copy
-- only its own store's rows of the store-scoped tables.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'loyalty_replication') THEN
        CREATE ROLE loyalty_replication NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA loyalty TO loyalty_replication;

-- Each replication login and the store (or hub) whose publication it reads.
CREATE TABLE loyalty.replica_login (
    login      name PRIMARY KEY,
    store_code text NOT NULL
        CONSTRAINT replica_login_store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.replica_login IS 'Replication logins and the one store (or hub) whose publication each may copy';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_login', '');
GRANT SELECT ON loyalty.replica_login TO loyalty_dba;

-- Whether the session's replication login may copy a row of this store:
-- its own store's, or any store's for a hub's login.  Used by the row level
-- security policies below (the initial copy runs as the login).
CREATE FUNCTION loyalty.replica_login_sees(store_code text) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM loyalty.replica_login l
                     LEFT JOIN loyalty.replica_store r ON r.store_code = l.store_code
                    WHERE l.login = session_user
                      AND (l.store_code = replica_login_sees.store_code OR r.kind = 'hub'))
$$;
COMMENT ON FUNCTION loyalty.replica_login_sees(text) IS
    'Row level security for replication logins: true for rows of the login''s own store (any store for a hub''s login)';

CREATE FUNCTION loyalty.replica_login_grant(idempotency_key text, store_code text, login name) RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_login_grant';
COMMENT ON FUNCTION loyalty.replica_login_grant(text, text, name) IS
    'HQ: make an existing LOGIN REPLICATION role the replication login of one store (or hub): membership in loyalty_replication and its row';

CREATE FUNCTION loyalty.replica_login_revoke(idempotency_key text, login name) RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_replica_login_revoke';
COMMENT ON FUNCTION loyalty.replica_login_revoke(text, name) IS
    'HQ: end a replication login''s access (its row and its membership in loyalty_replication)';

-- Contact data as a store may hold it: one row per member, the same for
-- every store.  Derived from member_profile at HQ (never dumped: a restore
-- rebuilds it from the profiles through the trigger).
CREATE TABLE loyalty.replica_member_contact (
    member          uuid PRIMARY KEY,  -- the member's id; not named member_id, which member_merge would move
    full_name       text NOT NULL,
    gender          text,
    nationality     text,
    phone_masked    text,
    email_masked    text,
    phone_hash      bytea,
    birth_month_day text
);
COMMENT ON TABLE loyalty.replica_member_contact IS
    'What stores receive of a profile: name, masked phone and email, keyed phone hash, birth month-day (maintained at HQ)';
CREATE INDEX replica_member_contact_phone_idx ON loyalty.replica_member_contact (phone_hash);
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_member_contact', 'WHERE false');

-- Risk-tag notes, for the store that raised the tag only (the store code is
-- in the key, so the row filter holds for updates and deletes).  Derived
-- from risk_tag at HQ (never dumped).
CREATE TABLE loyalty.replica_risk_note (
    store_code      text NOT NULL,
    tag_id          uuid NOT NULL,
    note            text NOT NULL,
    resolution_note text,
    PRIMARY KEY (store_code, tag_id)
);
COMMENT ON TABLE loyalty.replica_risk_note IS
    'Notes of a store''s own risk tags, published to that store only (maintained at HQ)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.replica_risk_note', 'WHERE false');

-- member_tag is row-filtered on store_code, which may be NULL (an HQ tag):
-- the whole row is its replica identity.
ALTER TABLE loyalty.member_tag REPLICA IDENTITY FULL;

-- loyalty._replica_phone_hash(phone): the keyed hash of a phone number for
-- the contact rows, NULL while this database has no key (no fingerprint
-- recorded: loyalty.key_create() not run yet); the key's creation fills
-- the rows in (loyalty._replica_contact_rekey).
CREATE FUNCTION loyalty._replica_phone_hash(phone text) RETURNS bytea
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN phone IS NOT NULL AND EXISTS (SELECT 1 FROM loyalty.key_fingerprint)
                THEN loyalty._blind_index('phone', phone) END
$$;

-- HQ: when the key is made, the phone hashes of the contact rows made
-- before it (at a store the rows come from HQ: nothing to do).
CREATE FUNCTION loyalty._replica_contact_rekey() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM loyalty.replica_node)
       AND EXISTS (SELECT 1 FROM loyalty.key_fingerprint) THEN
        UPDATE loyalty.replica_member_contact c
           SET phone_hash = loyalty._blind_index('phone', p.phone)
          FROM loyalty.member_profile p
         WHERE p.member_id = c.member AND p.phone IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER key_fingerprint_contact_rekey
    AFTER INSERT ON loyalty.key_fingerprint
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._replica_contact_rekey();

-- HQ: keep the contact row of a profile.  Fires in ordinary sessions only
-- (at a store, member_profile is written from the contact rows instead).
CREATE FUNCTION loyalty._replica_contact_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM loyalty.replica_member_contact c WHERE c.member = OLD.member_id;
        RETURN NULL;
    END IF;
    INSERT INTO loyalty.replica_member_contact AS c
           (member, full_name, gender, nationality, phone_masked, email_masked, phone_hash, birth_month_day)
    VALUES (NEW.member_id, NEW.full_name, NEW.gender, NEW.nationality,
            loyalty.mask_phone(NEW.phone), loyalty.mask_email(NEW.email),
            loyalty._replica_phone_hash(NEW.phone),
            pg_catalog.to_char(NEW.birth_date, 'MM-DD'))
    ON CONFLICT (member) DO UPDATE
       SET full_name = excluded.full_name, gender = excluded.gender, nationality = excluded.nationality,
           phone_masked = excluded.phone_masked, email_masked = excluded.email_masked,
           phone_hash = excluded.phone_hash, birth_month_day = excluded.birth_month_day
     WHERE (c.full_name, c.gender, c.nationality, c.phone_masked, c.email_masked, c.phone_hash, c.birth_month_day)
           IS DISTINCT FROM
           (excluded.full_name, excluded.gender, excluded.nationality, excluded.phone_masked,
            excluded.email_masked, excluded.phone_hash, excluded.birth_month_day);
    RETURN NULL;
END
$$;
CREATE TRIGGER replica_contact_sync
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.member_profile
    FOR EACH ROW EXECUTE FUNCTION loyalty._replica_contact_sync();

-- HQ: keep the note row of a store's risk tag.
CREATE FUNCTION loyalty._replica_risk_note_sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.store_code IS NOT NULL
       AND (TG_OP = 'DELETE' OR NEW.store_code IS DISTINCT FROM OLD.store_code) THEN
        DELETE FROM loyalty.replica_risk_note n WHERE n.store_code = OLD.store_code AND n.tag_id = OLD.tag_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.store_code IS NOT NULL THEN
        INSERT INTO loyalty.replica_risk_note AS n (store_code, tag_id, note, resolution_note)
        VALUES (NEW.store_code, NEW.tag_id, NEW.note, NEW.resolution_note)
        ON CONFLICT (store_code, tag_id) DO UPDATE
           SET note = excluded.note, resolution_note = excluded.resolution_note
         WHERE (n.note, n.resolution_note) IS DISTINCT FROM (excluded.note, excluded.resolution_note);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER replica_risk_note_sync
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.risk_tag
    FOR EACH ROW EXECUTE FUNCTION loyalty._replica_risk_note_sync();

-- The rows of an HQ that already has profiles and risk tags (an update from
-- 1.1, or a database restored before these tables existed).
INSERT INTO loyalty.replica_member_contact
       (member, full_name, gender, nationality, phone_masked, email_masked, phone_hash, birth_month_day)
SELECT p.member_id, p.full_name, p.gender, p.nationality, loyalty.mask_phone(p.phone),
       loyalty.mask_email(p.email), loyalty._replica_phone_hash(p.phone), pg_catalog.to_char(p.birth_date, 'MM-DD')
  FROM loyalty.member_profile p
 WHERE NOT EXISTS (SELECT 1 FROM loyalty.replica_node);
INSERT INTO loyalty.replica_risk_note (store_code, tag_id, note, resolution_note)
SELECT t.store_code, t.tag_id, t.note, t.resolution_note
  FROM loyalty.risk_tag t
 WHERE t.store_code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM loyalty.replica_node);

-- At a store (apply worker and initial copy: ENABLE REPLICA): the profile
-- rows the store's views read are made from the contact rows, without
-- phone, email, birth date or address.
CREATE FUNCTION loyalty._replica_contact_arrived() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM loyalty.member_profile p WHERE p.member_id = OLD.member;
        RETURN NULL;
    END IF;
    INSERT INTO loyalty.member_profile AS p (member_id, full_name, gender, nationality)
    VALUES (NEW.member, NEW.full_name, NEW.gender, NEW.nationality)
    ON CONFLICT (member_id) DO UPDATE
       SET full_name = excluded.full_name, gender = excluded.gender, nationality = excluded.nationality;
    RETURN NULL;
END
$$;
CREATE TRIGGER replica_contact_arrived
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.replica_member_contact
    FOR EACH ROW EXECUTE FUNCTION loyalty._replica_contact_arrived();
ALTER TABLE loyalty.replica_member_contact ENABLE REPLICA TRIGGER replica_contact_arrived;

-- At a store: risk_tag arrives without its notes.  The store's own tags get
-- theirs from replica_risk_note (whichever of the two rows arrives first);
-- other stores' tags carry a placeholder, which no store view shows (notes
-- are store-scoped, docs/privacy.md).
CREATE FUNCTION loyalty._replica_risk_tag_arrived() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n loyalty.replica_risk_note;
BEGIN
    IF NEW.note IS NULL OR (NEW.resolved_at IS NOT NULL AND NEW.resolution_note IS NULL) THEN
        -- the initial copy fills risk_tag and replica_risk_note in two
        -- concurrent transactions: one waits for the other, then sees it
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.replica_risk_note'));
        SELECT * INTO n FROM loyalty.replica_risk_note r WHERE r.tag_id = NEW.tag_id;
        NEW.note := coalesce(NEW.note, n.note, '(kept at headquarters)');
        IF NEW.resolved_at IS NOT NULL THEN
            NEW.resolution_note := coalesce(NEW.resolution_note, n.resolution_note, '(kept at headquarters)');
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER replica_risk_tag_arrived
    BEFORE INSERT OR UPDATE ON loyalty.risk_tag
    FOR EACH ROW EXECUTE FUNCTION loyalty._replica_risk_tag_arrived();
ALTER TABLE loyalty.risk_tag ENABLE REPLICA TRIGGER replica_risk_tag_arrived;

CREATE FUNCTION loyalty._replica_risk_note_arrived() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('loyalty.replica_risk_note'));
    UPDATE loyalty.risk_tag t
       SET note = NEW.note,
           resolution_note = CASE WHEN t.resolved_at IS NULL THEN NULL
                                  ELSE coalesce(NEW.resolution_note, t.resolution_note) END
     WHERE t.tag_id = NEW.tag_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER replica_risk_note_arrived
    AFTER INSERT OR UPDATE OR DELETE ON loyalty.replica_risk_note
    FOR EACH ROW EXECUTE FUNCTION loyalty._replica_risk_note_arrived();
ALTER TABLE loyalty.replica_risk_note ENABLE REPLICA TRIGGER replica_risk_note_arrived;

-- At a store: find a member by exact phone number through the keyed hash
-- (the store holds no phone number).  The store's key file must be HQ's
-- (docs/operations.md); with another key nobody is found.  Audited, hit
-- or miss.
CREATE FUNCTION loyalty.store_member_find(phone text,
    OUT member_id uuid, OUT card_no text, OUT full_name text, OUT phone_masked text)
    RETURNS SETOF record
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_any boolean := false;
    r record;
BEGIN
    PERFORM loyalty._check_access(loyalty.caller_store(), ARRAY['frontdesk', 'store_manager', 'dba']);
    IF phone IS NULL OR phone !~ '^\+?[0-9]{5,20}$' THEN
        RAISE EXCEPTION 'invalid phone number'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give 5 to 20 digits, optionally after a +.';
    END IF;
    FOR r IN
        SELECT c.member AS member_id, m.card_no, c.full_name, c.phone_masked
          FROM loyalty.replica_member_contact c
          JOIN loyalty.member m ON m.member_id = c.member
         WHERE c.phone_hash = loyalty._blind_index('phone', store_member_find.phone)
    LOOP
        found_any := true;
        PERFORM loyalty._audit(r.member_id, 'store_member_find', ARRAY['phone'], 'service');
        member_id := r.member_id; card_no := r.card_no; full_name := r.full_name; phone_masked := r.phone_masked;
        RETURN NEXT;
    END LOOP;
    IF NOT found_any THEN
        PERFORM loyalty._audit(NULL, 'store_member_find_miss', ARRAY['phone'], 'service');
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.store_member_find(text) IS
    'Store: members with exactly this phone number, found by the keyed hash; audited, misses included';

-- Store departments read masked contact data through a view.
CREATE VIEW loyalty.store_member_contacts WITH (security_barrier) AS
SELECT c.member AS member_id, c.phone_masked, c.email_masked, c.birth_month_day
  FROM loyalty.replica_member_contact c;
COMMENT ON VIEW loyalty.store_member_contacts IS
    'Store: masked phone and email and birth month-day of members, as the store replica holds them';
ALTER VIEW loyalty.store_member_contacts OWNER TO loyalty_view_owner;
GRANT SELECT ON loyalty.replica_member_contact TO loyalty_view_owner;
GRANT SELECT ON loyalty.store_member_contacts
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_dba;

-- What a replication login may copy (the initial copy runs as the login):
-- the published columns, and of the store-scoped tables only its store's
-- rows.  member_profile and member_identity: nothing.
GRANT SELECT ON loyalty.store, loyalty.member, loyalty.replica_member_contact,
    loyalty.member_preference, loyalty.member_tag, loyalty.stay, loyalty.policy,
    loyalty.replica_store, loyalty.outbox_result, loyalty.point_balance,
    loyalty.risk_type, loyalty.benefit, loyalty.benefit_grant, loyalty.benefit_use,
    loyalty.replica_risk_note
    TO loyalty_replication;
GRANT SELECT (tag_id, member_id, risk_code, store_code, amount_owed, raised_at, raised_by,
              resolved_at, resolved_by, resolved_store, resolution)
    ON loyalty.risk_tag TO loyalty_replication;
-- the store-scoped policies of the privacy area call these
GRANT EXECUTE ON FUNCTION loyalty.store_visible(text), loyalty.caller_store(), loyalty.caller_is_hq(),
    loyalty.replica_login_sees(text) TO loyalty_replication;

CREATE POLICY replica_copy ON loyalty.stay FOR SELECT TO loyalty_replication
    USING (loyalty.replica_login_sees(store_code));
CREATE POLICY replica_copy ON loyalty.member_preference FOR SELECT TO loyalty_replication
    USING (scope = 'chain' OR loyalty.replica_login_sees(store_code));
CREATE POLICY replica_copy ON loyalty.benefit_grant FOR SELECT TO loyalty_replication
    USING (source <> 'store' OR loyalty.replica_login_sees(store_code));
CREATE POLICY replica_copy ON loyalty.benefit_use FOR SELECT TO loyalty_replication
    USING (true);
-- member_tag and member_profile are readable chain-wide by policy; for a
-- replication login these restrict them
CREATE POLICY replica_copy ON loyalty.member_tag AS RESTRICTIVE FOR SELECT TO loyalty_replication
    USING (loyalty.replica_login_sees(store_code));
CREATE POLICY replica_never ON loyalty.member_profile AS RESTRICTIVE FOR SELECT TO loyalty_replication
    USING (false);
-- tables without row level security so far: every reader keeps every
-- row, a replication login its own store's
ALTER TABLE loyalty.replica_risk_note ENABLE ROW LEVEL SECURITY;
CREATE POLICY chain_read ON loyalty.replica_risk_note FOR SELECT USING (true);
CREATE POLICY replica_copy ON loyalty.replica_risk_note AS RESTRICTIVE FOR SELECT TO loyalty_replication
    USING (loyalty.replica_login_sees(store_code));
ALTER TABLE loyalty.outbox_result ENABLE ROW LEVEL SECURITY;
CREATE POLICY chain_read ON loyalty.outbox_result FOR SELECT USING (true);
CREATE POLICY replica_copy ON loyalty.outbox_result AS RESTRICTIVE FOR SELECT TO loyalty_replication
    USING (loyalty.replica_login_sees(store_code));

REVOKE ALL ON FUNCTION loyalty.replica_login_sees(text), loyalty.replica_login_grant(text, text, name),
    loyalty.replica_login_revoke(text, name), loyalty._replica_contact_sync(),
    loyalty._replica_risk_note_sync(), loyalty._replica_contact_arrived(),
    loyalty._replica_phone_hash(text), loyalty._replica_contact_rekey(),
    loyalty._replica_risk_tag_arrived(), loyalty._replica_risk_note_arrived(),
    loyalty.store_member_find(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.replica_login_grant(text, text, name),
    loyalty.replica_login_revoke(text, name) TO loyalty_dba;
GRANT EXECUTE ON FUNCTION loyalty.store_member_find(text)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_dba;
