-- partner conversion (issue 17 item 5, docs/rewards.md): new in 1.2.
\ir 37_partner.sql
