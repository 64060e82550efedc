-- crm: the member-facing role and the guest app functions (docs/crm.md)
\ir 68_member_app.sql
