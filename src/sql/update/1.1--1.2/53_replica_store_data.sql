-- replica (issues 12.3, 14.7, 14.9): what a store receives and who may
-- receive it, as in a fresh install.
\ir 53_replica_store_data.sql
