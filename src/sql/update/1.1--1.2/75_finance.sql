-- segments: the points' money, new in 1.2 (see src/sql/75_finance.sql)
\ir 75_finance.sql
