-- CRM: service cases and the interaction log (docs/crm.md).  The rules
-- (who, what, due times, escalation) are in C (src/crm_case.c); store
-- staff see their own store's cases and contacts, HQ all of them.

CREATE TABLE loyalty.service_case (
    case_id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member,
    kind             text NOT NULL
        CONSTRAINT service_case_kind_valid CHECK (kind IN ('complaint', 'request', 'feedback', 'praise')),
    channel          text NOT NULL
        CONSTRAINT service_case_channel_valid CHECK (channel IN
            ('front_desk', 'phone', 'email', 'app', 'web', 'social', 'survey', 'letter', 'other')),
    severity         text NOT NULL
        CONSTRAINT service_case_severity_valid CHECK (severity IN ('low', 'normal', 'high', 'critical')),
    subject          text NOT NULL
        CONSTRAINT service_case_subject_length CHECK (length(subject) BETWEEN 1 AND 500),
    store_code       text NOT NULL REFERENCES loyalty.store,
    department       text NOT NULL
        CONSTRAINT service_case_department_valid CHECK (department IN
            ('frontdesk', 'housekeeping', 'fnb', 'store_manager', 'crm')),
    assignee         text
        CONSTRAINT service_case_assignee_length CHECK (length(assignee) BETWEEN 1 AND 63),
    status           text NOT NULL DEFAULT 'open'
        CONSTRAINT service_case_status_valid CHECK (status IN ('open', 'in_progress', 'escalated', 'resolved')),
    opened_at        timestamptz NOT NULL DEFAULT now(),
    opened_by        name NOT NULL DEFAULT session_user,
    due_at           timestamptz NOT NULL,
    escalation_level integer NOT NULL DEFAULT 0,
    escalated_at     timestamptz,
    resolution       text
        CONSTRAINT service_case_resolution_length CHECK (length(resolution) BETWEEN 1 AND 2000),
    satisfaction     integer
        CONSTRAINT service_case_satisfaction_range CHECK (satisfaction BETWEEN 1 AND 5),
    resolved_at      timestamptz,
    resolved_by      name,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT service_case_resolved_complete CHECK
        ((status = 'resolved') = (resolved_at IS NOT NULL AND resolution IS NOT NULL))
);
COMMENT ON TABLE loyalty.service_case IS
    'Complaints, requests, feedback and praise with due time, escalation, resolution and satisfaction';
CREATE INDEX service_case_store_idx ON loyalty.service_case (store_code, status);
CREATE INDEX service_case_member_idx ON loyalty.service_case (member_id);
CREATE INDEX service_case_due_idx ON loyalty.service_case (due_at) WHERE status <> 'resolved';
SELECT pg_catalog.pg_extension_config_dump('loyalty.service_case', '');

CREATE TABLE loyalty.service_interaction (
    interaction_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id        uuid NOT NULL REFERENCES loyalty.member,
    case_id          uuid REFERENCES loyalty.service_case,
    store_code       text NOT NULL REFERENCES loyalty.store,
    channel          text NOT NULL
        CONSTRAINT service_interaction_channel_valid CHECK (channel IN
            ('front_desk', 'phone', 'email', 'app', 'web', 'social', 'survey', 'letter', 'other')),
    kind             text NOT NULL
        CONSTRAINT service_interaction_kind_valid CHECK (kind IN
            ('call', 'email', 'sms', 'visit', 'care', 'note', 'other')),
    summary          text NOT NULL
        CONSTRAINT service_interaction_summary_length CHECK (length(summary) BETWEEN 1 AND 2000),
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    recorded_by      name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE loyalty.service_interaction IS 'Contacts with a member (calls, emails, care visits), per store';
CREATE INDEX service_interaction_store_idx ON loyalty.service_interaction (store_code, occurred_at);
CREATE INDEX service_interaction_member_idx ON loyalty.service_interaction (member_id, occurred_at);
SELECT pg_catalog.pg_extension_config_dump('loyalty.service_interaction', '');

-- Row level security: a store's rows to that store, all to HQ.
ALTER TABLE loyalty.service_case ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.service_case FOR SELECT
    USING (loyalty.store_visible(store_code));
ALTER TABLE loyalty.service_interaction ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.service_interaction FOR SELECT
    USING (loyalty.store_visible(store_code));
REVOKE ALL ON loyalty.service_case, loyalty.service_interaction FROM PUBLIC;
GRANT SELECT ON loyalty.service_case, loyalty.service_interaction TO loyalty_view_owner;

CREATE VIEW loyalty.service_cases WITH (security_barrier) AS
SELECT case_id, member_id, kind, channel, severity, subject, store_code, department,
       assignee, status, opened_at, due_at, escalation_level, escalated_at,
       resolution, satisfaction, resolved_at,
       status <> 'resolved' AND due_at <= now() AS overdue
  FROM loyalty.service_case;
COMMENT ON VIEW loyalty.service_cases IS 'Service cases of the caller''s store (every store for HQ)';
CREATE VIEW loyalty.service_interactions WITH (security_barrier) AS
SELECT interaction_id, member_id, case_id, store_code, channel, kind, summary, occurred_at, recorded_by
  FROM loyalty.service_interaction;
COMMENT ON VIEW loyalty.service_interactions IS 'Contacts with members at the caller''s store (every store for HQ)';
ALTER VIEW loyalty.service_cases OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.service_interactions OWNER TO loyalty_view_owner;
REVOKE ALL ON loyalty.service_cases, loyalty.service_interactions FROM PUBLIC;
GRANT SELECT ON loyalty.service_cases, loyalty.service_interactions
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;

CREATE FUNCTION loyalty.case_open(idempotency_key text, member_id uuid, kind text,
    channel text, severity text, subject text, store_code text DEFAULT NULL,
    department text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_case_open';
COMMENT ON FUNCTION loyalty.case_open(text, uuid, text, text, text, text, text, text) IS
    'Open a service case at the caller''s store, due by its severity; audited, announced';

CREATE FUNCTION loyalty.case_assign(idempotency_key text, case_id uuid, department text,
    assignee text DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_case_assign';
COMMENT ON FUNCTION loyalty.case_assign(text, uuid, text, text) IS
    'Hand a service case to a department and assignee (store manager, HQ CRM); audited, announced';

CREATE FUNCTION loyalty.case_resolve(idempotency_key text, case_id uuid, resolution text,
    satisfaction integer DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_case_resolve';
COMMENT ON FUNCTION loyalty.case_resolve(text, uuid, text, integer) IS
    'Resolve a service case with its resolution and the member''s satisfaction (1-5); audited, announced';

CREATE FUNCTION loyalty.case_escalate_overdue(as_of timestamptz DEFAULT NULL)
    RETURNS integer
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_case_escalate_overdue';
COMMENT ON FUNCTION loyalty.case_escalate_overdue(timestamptz) IS
    'Scheduled job: escalate every overdue unresolved case one level, with a case_escalated event';

CREATE FUNCTION loyalty.interaction_log(idempotency_key text, member_id uuid, channel text,
    kind text, summary text, case_id uuid DEFAULT NULL, store_code text DEFAULT NULL)
    RETURNS uuid
    LANGUAGE c VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_interaction_log';
COMMENT ON FUNCTION loyalty.interaction_log(text, uuid, text, text, text, uuid, text) IS
    'Record a contact with a member (call, email, care visit), optionally about a case; audited';

REVOKE ALL ON FUNCTION loyalty.case_open(text, uuid, text, text, text, text, text, text),
    loyalty.case_assign(text, uuid, text, text), loyalty.case_resolve(text, uuid, text, integer),
    loyalty.case_escalate_overdue(timestamptz),
    loyalty.interaction_log(text, uuid, text, text, text, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.case_open(text, uuid, text, text, text, text, text, text),
    loyalty.case_resolve(text, uuid, text, integer),
    loyalty.interaction_log(text, uuid, text, text, text, uuid, text)
    TO loyalty_frontdesk, loyalty_housekeeping, loyalty_fnb, loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.case_assign(text, uuid, text, text)
    TO loyalty_store_manager, loyalty_crm;
GRANT EXECUTE ON FUNCTION loyalty.case_escalate_overdue(timestamptz) TO loyalty_crm, loyalty_dba;
