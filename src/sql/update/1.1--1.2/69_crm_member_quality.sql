-- crm: data quality reports (docs/crm.md)
\ir 69_member_quality.sql
