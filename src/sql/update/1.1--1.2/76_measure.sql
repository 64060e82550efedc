-- segments: campaign measurement, new in 1.2 (see src/sql/76_measure.sql)
\ir 76_measure.sql
