-- The 1.1 names as deprecated wrappers of the 1.2 ones (issue 11).
\ir 99_deprecated.sql
