-- segments: segment definitions and membership, new in 1.2 (see src/sql/71_segment.sql)
\ir 71_segment.sql
