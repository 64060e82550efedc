\ir 42_audit_trail.sql

-- The 1.1 log's rows move into the default partition (set aside by
-- 40_audit.sql); the retention purge deletes them month by month.
INSERT INTO loyalty.audit_log (audit_id, at, login, role, store_code, department, member_id,
                               action, fields, purpose, prev_hash, hash)
SELECT o.audit_id, o.at, o.login, o.role, o.store_code, o.department, o.member_id,
       o.action, o.fields, o.purpose, o.prev_hash, o.hash
  FROM loyalty._audit_log_11 o;
DROP TABLE loyalty._audit_log_11;
