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
