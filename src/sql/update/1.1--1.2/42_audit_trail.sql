\ir 42_audit_trail.sql
