-- crm: profile maintenance, status and home store (docs/crm.md)
\ir 04_member_life.sql
