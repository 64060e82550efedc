-- privacy: the key file outside the data directory and its recorded fingerprint, new in 1.2 (see src/sql/43_privacy_key.sql)
\ir 43_privacy_key.sql
