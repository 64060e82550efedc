-- Behaviour and risk tags.

CREATE TABLE loyalty.member_tag (
    tag_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id    uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    kind         text NOT NULL
        CONSTRAINT tag_kind_valid CHECK (kind IN ('behaviour', 'risk')),
    code         text NOT NULL
        CONSTRAINT tag_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,31}$'),
    store_code   text REFERENCES loyalty.store,
    note         text
        CONSTRAINT tag_note_length CHECK (length(note) <= 1000),
    amount_owed  numeric(12, 2)
        CONSTRAINT tag_amount_owed_positive CHECK (amount_owed > 0),
    raised_at    timestamptz NOT NULL DEFAULT now(),
    raised_by    name NOT NULL DEFAULT session_user,
    resolved_at  timestamptz,
    resolved_by  name,
    resolution   text,
    CONSTRAINT tag_resolution_complete CHECK
        ((resolved_at IS NULL) = (resolved_by IS NULL))
);
COMMENT ON TABLE loyalty.member_tag IS 'Behaviour tags and risk tags (e.g. an unresolved violation)';
CREATE INDEX member_tag_member_idx ON loyalty.member_tag (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_tag', '');
