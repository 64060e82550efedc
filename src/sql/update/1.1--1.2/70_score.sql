-- segments: member scores and the score/segment runs, new in 1.2 (see src/sql/70_score.sql)
\ir 70_score.sql
