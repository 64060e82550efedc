-- replica (issue 14, slot tampering): replica_harden(), as in a fresh install.
\ir 55_replica_harden.sql
