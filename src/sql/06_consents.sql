-- Consents: what a member agreed to, when, where and under which notice.

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
-- (privacy functions over this table: src/sql/45_privacy_ops.sql)
