-- points sale (issue 17 item 4, docs/rewards.md): new in 1.2.
\ir 36_points_sale.sql
