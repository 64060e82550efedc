-- CRM: the member's life after enrolment (docs/crm.md): profile
-- maintenance, status (active, suspended, closed) and home store.  The
-- rules are in C (src/member_life.c); this file is their shape.

-- A member's status: active (earns, redeems), suspended (earns, redeems
-- nothing), closed (neither; a merged duplicate is closed and points to
-- its survivor), erased (out of reach, docs/privacy.md).
ALTER TABLE loyalty.member DROP CONSTRAINT member_status_valid;
ALTER TABLE loyalty.member ADD CONSTRAINT member_status_valid
    CHECK (status IN ('active', 'suspended', 'closed', 'erased'));
ALTER TABLE loyalty.member
    ADD COLUMN status_reason text
        CONSTRAINT member_status_reason_length CHECK (length(status_reason) BETWEEN 1 AND 500),
    ADD COLUMN last_verified_at timestamptz,
    ADD COLUMN merged_into uuid REFERENCES loyalty.member
        CONSTRAINT member_merged_into_closed CHECK (merged_into IS NULL OR status IN ('closed', 'erased'));
COMMENT ON COLUMN loyalty.member.status_reason IS 'Why the member was suspended or closed (staff text, HQ only)';
COMMENT ON COLUMN loyalty.member.last_verified_at IS 'When the member last confirmed the profile data';
COMMENT ON COLUMN loyalty.member.merged_into IS 'The surviving member this closed duplicate was merged into';
CREATE INDEX member_merged_into_idx ON loyalty.member (merged_into) WHERE merged_into IS NOT NULL;

ALTER TABLE loyalty.member_profile
    ADD COLUMN employer text
        CONSTRAINT profile_employer_length CHECK (length(employer) BETWEEN 1 AND 200),
    ADD COLUMN wedding_anniversary date
        CONSTRAINT profile_wedding_anniversary_range CHECK (wedding_anniversary >= DATE '1900-01-01');
COMMENT ON COLUMN loyalty.member_profile.employer IS 'Employer or company (CRM only)';
COMMENT ON COLUMN loyalty.member_profile.wedding_anniversary IS 'Wedding anniversary, a special date for offers (CRM only)';

-- Answered CRM calls by idempotency key: a retry returns the first answer.
-- The arguments are kept only as a hash, so a clash shows nothing of them.
CREATE TABLE loyalty.crm_request (
    idem_key    text PRIMARY KEY
        CONSTRAINT crm_request_key_length CHECK (length(idem_key) BETWEEN 1 AND 200),
    operation   text NOT NULL,
    args_hash   bytea NOT NULL,
    result      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.crm_request IS 'Answered CRM calls by idempotency key (arguments as a hash)';
SELECT pg_catalog.pg_extension_config_dump('loyalty.crm_request', '');
REVOKE ALL ON loyalty.crm_request FROM PUBLIC;

CREATE FUNCTION loyalty.member_update(idempotency_key text, member_id uuid, changes jsonb)
    RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_member_update';
COMMENT ON FUNCTION loyalty.member_update(text, uuid, jsonb) IS
    'Change profile fields (validated as at enrolment; store staff: phone, email, address); audited masked, announced';

CREATE FUNCTION loyalty.member_status_set(idempotency_key text, member_id uuid, status text,
    reason text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_member_status_set';
COMMENT ON FUNCTION loyalty.member_status_set(text, uuid, text, text) IS
    'Set a member active, suspended (redeems nothing) or closed (earns and redeems nothing); audited, announced';

CREATE FUNCTION loyalty.member_home_store_set(idempotency_key text, member_id uuid, store_code text)
    RETURNS jsonb
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_member_home_store_set';
COMMENT ON FUNCTION loyalty.member_home_store_set(text, uuid, text) IS
    'Move a member''s home store (HQ CRM); audited, announced';

REVOKE ALL ON FUNCTION loyalty.member_update(text, uuid, jsonb),
    loyalty.member_status_set(text, uuid, text, text),
    loyalty.member_home_store_set(text, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.member_update(text, uuid, jsonb)
    TO loyalty_frontdesk, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.member_status_set(text, uuid, text, text)
    TO loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.member_home_store_set(text, uuid, text) TO loyalty_crm;
