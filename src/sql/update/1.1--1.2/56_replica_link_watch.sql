-- replica (issue 14, scheduled link check): replica_link_log and replica_link_watch(), as in a fresh install.
\ir 56_replica_link_watch.sql
