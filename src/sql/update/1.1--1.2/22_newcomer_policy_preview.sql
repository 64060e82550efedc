-- newcomer: loyalty.policy_preview (src/sql/22_policy_preview.sql)
\ir 22_policy_preview.sql
