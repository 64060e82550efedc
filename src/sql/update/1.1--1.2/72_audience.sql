-- segments: new in 1.2 (see src/sql/72_audience.sql)
\ir 72_audience.sql
