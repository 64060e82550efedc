-- replica (issue 14.11): replica_link_check(), as in a fresh install.
\ir 54_replica_status.sql
