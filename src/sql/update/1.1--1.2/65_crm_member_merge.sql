-- crm: duplicates and merges (docs/crm.md)
\ir 65_member_merge.sql
