-- Privacy: BI rows that single nobody out (issue 12.6) and BI keys that
-- erasure re-keys (issue 12.7); docs/privacy.md "BI", docs/threat-model.md.
--
-- Pseudonyms.  A member's BI key is the HMAC (src/privacy_crypto.c) of a
-- seed: a random uuid drawn when the member is created
-- (loyalty.member_pseudonym_key), or the member id itself for members that
-- existed before 1.2 and were never re-keyed (their keys stay what BI
-- already holds).  loyalty._member_erase() replaces the seed by a new random
-- one, so nothing computes the old key from the member id any more.
--
-- k-anonymity.  The row-level BI views share the key (they join), so the
-- quasi-identifiers a BI user can put side by side are those of
-- bi_members together with those of one row of bi_stays or bi_points.
-- bi_members publishes generalised values only (home store, tier, status,
-- gender, decade of birth, year of enrolment) and leaves out every member
-- whose combination fewer than k members share; bi_stays and bi_points
-- publish a row only for a member bi_members shows and only when at least
-- k members share the combination of the member's published values and the
-- row's own (store, month, nights, rooms, status; store, brand, month,
-- kind).  Any coarser grouping is a union of such groups, so every
-- combination of published quasi-identifiers has at least k members.
-- k is the superuser-only setting loyalty.bi_k_anonymity (default 5).
-- Amounts (revenue, points) are published values, not quasi-identifiers:
-- see the residual risks in docs/threat-model.md.

CREATE TABLE loyalty.member_pseudonym_key (
    member_id   uuid PRIMARY KEY REFERENCES loyalty.member ON DELETE CASCADE,
    seed        uuid NOT NULL,
    rekeyed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.member_pseudonym_key IS
    'Seed of each member''s BI pseudonym (none: the member id, as before 1.2); erasure replaces it';
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_pseudonym_key', '');
REVOKE ALL ON loyalty.member_pseudonym_key FROM PUBLIC;
GRANT SELECT ON loyalty.member_pseudonym_key TO loyalty_view_owner;

-- every new member gets a random seed
CREATE FUNCTION loyalty._pseudonym_seed_new() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO loyalty.member_pseudonym_key (member_id, seed)
        VALUES (NEW.member_id, pg_catalog.gen_random_uuid());
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION loyalty._pseudonym_seed_new() FROM PUBLIC;
CREATE TRIGGER member_pseudonym_seed AFTER INSERT ON loyalty.member
    FOR EACH ROW EXECUTE FUNCTION loyalty._pseudonym_seed_new();

-- a seed written for a member replaces the one the member has: pg_restore
-- loads loyalty.member (whose trigger draws new seeds) before the dumped
-- seeds, which must win
CREATE FUNCTION loyalty._pseudonym_seed_replace() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM loyalty.member_pseudonym_key k WHERE k.member_id = NEW.member_id;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION loyalty._pseudonym_seed_replace() FROM PUBLIC;
CREATE TRIGGER member_pseudonym_key_replace BEFORE INSERT ON loyalty.member_pseudonym_key
    FOR EACH ROW EXECUTE FUNCTION loyalty._pseudonym_seed_replace();

-- The HMAC itself (32 hex digits, unchanged since 1.0), of a seed.  The BI
-- views call it, and a view's functions are called with the privileges of
-- the user of the view: granted to BI, which sees no member id or seed.
CREATE FUNCTION loyalty._pseudonym_hmac(seed uuid) RETURNS text
    LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_pseudonym';
REVOKE ALL ON FUNCTION loyalty._pseudonym_hmac(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty._pseudonym_hmac(uuid) TO loyalty_bi, loyalty_view_owner;

-- loyalty.pseudonym(member_id): the member's current BI key (C until 1.1).
CREATE OR REPLACE FUNCTION loyalty.pseudonym(member_id uuid) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN loyalty._pseudonym_hmac(coalesce(
        (SELECT k.seed FROM loyalty.member_pseudonym_key k WHERE k.member_id = pseudonym.member_id),
        pseudonym.member_id));
COMMENT ON FUNCTION loyalty.pseudonym(uuid) IS
    'Keyed pseudonymous member key for BI (HMAC of the member''s seed); erasure re-keys it';
REVOKE ALL ON FUNCTION loyalty.pseudonym(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.pseudonym(uuid) TO loyalty_bi, loyalty_view_owner;

-- loyalty.bi_k(): k, the smallest group the BI row views publish.
CREATE FUNCTION loyalty.bi_k() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    RETURN loyalty._privacy_setting('bi_k_anonymity');
COMMENT ON FUNCTION loyalty.bi_k() IS
    'k of the BI row views'' k-anonymity: the setting loyalty.bi_k_anonymity (default 5)';
REVOKE ALL ON FUNCTION loyalty.bi_k() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.bi_k() TO loyalty_bi, loyalty_view_owner, loyalty_crm, loyalty_dba;

-- The members BI may see (not erased, profiling consent in effect, issue
-- 12.5) with their key and generalised quasi-identifiers, only those whose
-- combination at least k members share.  Internal: the BI views read it.
CREATE VIEW loyalty._bi_member_qi WITH (security_barrier) AS
SELECT q.member_id, q.member_key, q.home_store, q.tier, q.status, q.gender,
       q.birth_decade, q.enrolled_year
  FROM (SELECT e.*,
               count(*) OVER (PARTITION BY e.home_store, e.tier, e.status, e.gender,
                                           e.birth_decade, e.enrolled_year) AS members
          FROM (SELECT m.member_id,
                       loyalty._pseudonym_hmac(coalesce(k.seed, m.member_id)) AS member_key,
                       m.home_store, m.tier, m.status, p.gender,
                       loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
                       extract(year FROM m.enrolled_at AT TIME ZONE 'UTC')::integer AS enrolled_year
                  FROM loyalty.member m
                  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
                  LEFT JOIN loyalty.member_pseudonym_key k ON k.member_id = m.member_id
                 WHERE m.status <> 'erased'
                   AND m.member_id IN (SELECT c.member_id FROM loyalty.member_consents c
                                        WHERE c.purpose = 'profiling' AND c.granted)) e) q
 WHERE q.members >= loyalty.bi_k();

-- One row per member: key, home store, tier, status, gender, decade of
-- birth, year of enrolment.
CREATE VIEW loyalty.bi_members WITH (security_barrier) AS
SELECT b.member_key, b.home_store, b.tier, b.status, b.gender, b.birth_decade, b.enrolled_year
  FROM loyalty._bi_member_qi b;
COMMENT ON VIEW loyalty.bi_members IS
    'Members for BI: pseudonymous key, generalised quasi-identifiers; groups smaller than bi_k() left out';

-- One row per stay, by month; only stays whose combination with the
-- member's published values at least k members share.
CREATE VIEW loyalty.bi_stays WITH (security_barrier) AS
SELECT r.member_key, r.store_code, r.stay_month, r.nights, r.rooms, r.room_revenue,
       r.other_revenue, r.status
  FROM (SELECT d.*,
               max(d.rank) OVER (PARTITION BY d.home_store, d.tier, d.member_status, d.gender,
                   d.birth_decade, d.enrolled_year, d.store_code, d.stay_month, d.nights,
                   d.rooms, d.status) AS members
          FROM (SELECT b.member_key, b.home_store, b.tier, b.status AS member_status, b.gender,
                       b.birth_decade, b.enrolled_year, s.store_code,
                       date_trunc('month', s.check_in)::date AS stay_month,
                       (s.check_out - s.check_in) AS nights, s.rooms, s.room_revenue,
                       s.other_revenue, s.status,
                       -- the number of distinct members so far in the group
                       dense_rank() OVER (PARTITION BY b.home_store, b.tier, b.status, b.gender,
                           b.birth_decade, b.enrolled_year, s.store_code,
                           date_trunc('month', s.check_in)::date, (s.check_out - s.check_in),
                           s.rooms, s.status ORDER BY b.member_id) AS rank
                  FROM loyalty._bi_member_qi b
                  JOIN loyalty.stay s ON s.member_id = b.member_id) d) r
 WHERE r.members >= loyalty.bi_k();
COMMENT ON VIEW loyalty.bi_stays IS
    'Stays for BI by month, with pseudonymous member keys; combinations shared by fewer than bi_k() members left out';

ALTER VIEW loyalty._bi_member_qi OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_members OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.bi_stays OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty._bi_member_qi, loyalty.bi_members, loyalty.bi_stays FROM PUBLIC;
GRANT SELECT ON loyalty.bi_members, loyalty.bi_stays TO loyalty_bi;
