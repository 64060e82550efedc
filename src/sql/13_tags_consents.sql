-- Behaviour and risk tags, and consents.

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

CREATE TABLE loyalty.member_consent (
    consent_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id      uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    purpose        text NOT NULL
        CONSTRAINT consent_purpose_valid CHECK (purpose IN
            ('marketing_email', 'marketing_sms', 'profiling', 'cross_border', 'third_party')),
    granted        boolean NOT NULL,
    notice_version text NOT NULL
        CONSTRAINT consent_notice_length CHECK (length(notice_version) BETWEEN 1 AND 50),
    store_code     text REFERENCES loyalty.store,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.member_consent IS 'What a member agreed to, when, where and under which notice (latest row per purpose wins)';
CREATE INDEX member_consent_member_idx ON loyalty.member_consent (member_id, purpose, recorded_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_consent', '');
