-- Behaviour tags ("frequent business traveller", "prefers quiet rooms").
-- Risk tags (an unresolved violation, an amount owed) have their own table,
-- loyalty.risk_tag (src/sql/30_risk.sql), because they freeze benefits and
-- carry an audit trail; see docs/benefits.md.

CREATE TABLE loyalty.member_tag (
    tag_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id    uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    code         text NOT NULL
        CONSTRAINT tag_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    store_code   text REFERENCES loyalty.store,
    note         text
        CONSTRAINT tag_note_length CHECK (length(note) <= 1000),
    tagged_at    timestamptz NOT NULL DEFAULT now(),
    tagged_by    name NOT NULL DEFAULT session_user,
    retired_at   timestamptz
);
COMMENT ON TABLE loyalty.member_tag IS 'Behaviour tags of members (risk tags are in loyalty.risk_tag)';
CREATE INDEX member_tag_member_idx ON loyalty.member_tag (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_tag', '');
