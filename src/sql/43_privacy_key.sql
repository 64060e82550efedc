-- The key of sensitive identity data (docs/privacy.md, "The key file";
-- issue 12.8, 14.6): the key material is the file named by the setting
-- loyalty.key_file, outside the data directory (src/privacy_key.c); this
-- database records its fingerprint, and every backend compares the file
-- with it before its first use.  A key is made only by
-- loyalty.key_create(), never by first use or CREATE EXTENSION: a restore
-- brings the recorded fingerprint back, and a missing or different key
-- file is then an error, not a silently new key.

-- loyalty.key_fingerprint: one row, the fingerprint of this database's key
-- (HMAC-SHA256, keyed with the key material, of a fixed label).  Granted
-- to nobody; the C code reads it as the bootstrap superuser.
CREATE TABLE loyalty.key_fingerprint (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fingerprint bytea NOT NULL CHECK (length(fingerprint) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by name NOT NULL DEFAULT current_user
);
COMMENT ON TABLE loyalty.key_fingerprint IS
    'Fingerprint of this database''s key file (loyalty.key_file): a missing or different key is an error';
REVOKE ALL ON loyalty.key_fingerprint FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('loyalty.key_fingerprint', '');

-- loyalty.key_create(): make this database's key (a new key file where
-- loyalty.key_file says, or the key file already there) and record its
-- fingerprint; refused once a key is recorded.  Superuser only.
CREATE FUNCTION loyalty.key_create() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'loyalty_key_create';
COMMENT ON FUNCTION loyalty.key_create() IS
    'Make this database''s key file (or take the one loyalty.key_file names) and record its fingerprint; superuser, once';
REVOKE ALL ON FUNCTION loyalty.key_create() FROM PUBLIC;
