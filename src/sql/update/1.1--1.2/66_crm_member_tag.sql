-- crm: behaviour tags and tentative preferences (docs/crm.md)
\ir 66_member_tag.sql
