-- crm: bulk import through staging tables (docs/crm.md)
\ir 07_member_import.sql
