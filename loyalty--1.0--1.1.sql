-- loyalty 1.0 -> 1.1
--
-- Every change after the 1.0 release goes here, in the order it was made
-- (docs/development.md, "Versions").  A fresh CREATE EXTENSION of 1.1 runs
-- loyalty--1.0.sql and then this script, so installs and upgrades are the
-- same by construction; test/t/062_upgrade.pl checks it with data in place.

\echo Use "ALTER EXTENSION loyalty UPDATE TO '1.1'" to load this file. \quit

-- perf: loyalty.benefits() is SECURITY INVOKER.  It makes its own access
-- checks (the caller's department and store, loyalty_caller()) and then runs
-- as the function's owner with the search path pinned to pg_catalog, in C
-- (src/benefit_owner.c), which costs a fraction of SECURITY DEFINER with
-- SET search_path on every call (docs/benefits.md, "Performance").
ALTER FUNCTION loyalty.benefits(uuid, text, timestamptz) SECURITY INVOKER RESET search_path;

-- perf: loyalty.bi_members generalises enrolled_at to its UTC month with a C
-- function that gives the same text as to_char(... AT TIME ZONE 'UTC',
-- 'YYYY-MM') without parsing the format on every row (docs/privacy.md,
-- "Performance"; test/pgtap/43_pseudonym_hmac.sql compares the two).
CREATE FUNCTION loyalty.mask_month_utc(timestamptz) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'loyalty_mask_month_utc';
COMMENT ON FUNCTION loyalty.mask_month_utc(timestamptz) IS
    'A time generalised to its calendar month in UTC: 2026-03';
REVOKE ALL ON FUNCTION loyalty.mask_month_utc(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.mask_month_utc(timestamptz)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager,
       loyalty_crm, loyalty_marketing, loyalty_bi, loyalty_dba, loyalty_view_owner;
CREATE OR REPLACE VIEW loyalty.bi_members WITH (security_barrier) AS
SELECT loyalty.pseudonym(m.member_id) AS member_key,
       m.home_store, m.tier, m.status, p.gender,
       loyalty.mask_birth_decade(p.birth_date) AS birth_decade,
       loyalty.mask_month_utc(m.enrolled_at) AS enrolled_month
  FROM loyalty.member m
  LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id
 WHERE m.status <> 'erased';
