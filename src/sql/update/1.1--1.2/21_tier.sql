-- tier: the 1.0 tier job table and its bookkeeping function have been unused
-- since 1.1 moved the tier jobs onto loyalty.job (their rows were copied
-- there by the 1.0 -> 1.1 update); 1.2 drops them.  DROP TABLE leaves a
-- dropped table's entry in the extension's dump configuration, and an
-- update script cannot ALTER EXTENSION itself, so the entry goes first.
UPDATE pg_catalog.pg_extension e
   SET extcondition = (SELECT pg_catalog.array_agg(u.cond ORDER BY u.n)
                         FROM unnest(e.extconfig, e.extcondition) WITH ORDINALITY AS u(rel, cond, n)
                        WHERE u.rel <> 'loyalty.tier_job'::regclass),
       extconfig = pg_catalog.array_remove(e.extconfig, 'loyalty.tier_job'::regclass::oid)
 WHERE e.extname = 'loyalty';
DROP FUNCTION loyalty._tier_job(uuid, text, timestamptz, bigint, bigint, boolean);
DROP TABLE loyalty.tier_job;
