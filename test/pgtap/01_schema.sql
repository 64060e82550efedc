-- pgTAP: the data model and the privileges of the role model.
BEGIN;
SELECT plan(24);

SELECT has_schema('loyalty');
SELECT tables_are('loyalty', ARRAY['store', 'member', 'member_profile', 'member_identity',
    'member_preference', 'member_pseudonym_key', 'member_tag', 'member_consent', 'stay', 'staff_role', 'policy',
    -- privacy (docs/privacy.md)
    'field_policy', 'audit_log', 'adjust_reason', 'adjust_request',
    'identity_conflict',   -- privacy 1.2: ID clashes for HQ (issue 12.1)
    -- the tier and earning engine (docs/tiers.md)
    'tier_activity', 'tier_counter', 'earning_line', 'charge', 'tier_history', 'tier_grant',
    'campaign',
    -- long jobs (docs/operations.md)
    'job',
    -- crm (docs/crm.md)
    'crm_request', 'service_case', 'service_interaction', 'member_merge',
    'member_app_login', 'member_app_request', 'import_member', 'import_stay',
    -- the point ledger (docs/ledger.md)
    'point_balance', 'point_entry', 'point_lot', 'point_draw', 'ledger_request',
    'event_outbox', 'event_consumer',
    -- idempotency records of keyed API calls without a ledger of their own (structure)
    'request_key',
    -- benefits and risk tags (docs/benefits.md)
    'risk_type', 'risk_tag', 'risk_tag_event', 'benefit', 'benefit_grant', 'benefit_use',
    -- store replicas (docs/replication.md)
    'replica_node', 'replica_store', 'outbox', 'outbox_result', 'outbox_queue',
    -- the audit trail (docs/audit.md)
    'audit_purpose', 'audit_change_staging', 'audit_anchor',
    '_audit_log_default',  -- the log's default partition (months: created by the job)
    -- replica guards (issue 14: the node identity)
    'replica_identity', 'outbox_reused', 'replica_login', 'replica_member_contact', 'replica_risk_note',
    -- the scheduled link check's findings (docs/replication.md, "The DBA view")
    'replica_link_log',
    -- the key file's fingerprint (docs/privacy.md, "The key file")
    'key_fingerprint',
    -- segments: scores, segments, audiences (docs/segments.md)
    'score_stage', 'member_score', 'segment_def', 'segment_member', 'campaign_targeting',
    'campaign_audience', 'campaign_registration', 'audience_export', 'audience_export_member',
    -- rewards (docs/rewards.md)
    'reward_request', 'store_category', 'reward_season', 'reward', 'reward_store',
    'reward_night_price', 'reward_inventory', 'voucher', 'reward_redemption',
    'points_sale_rule', 'points_sale_price', 'points_sale', 'partner', 'partner_transfer']);
SELECT col_is_pk('loyalty', 'member', 'member_id', 'member_id is the primary key');
SELECT col_type_is('loyalty', 'member', 'member_id', 'uuid', 'member ids are UUIDs, not counters');
SELECT col_not_null('loyalty', 'member_preference', 'store_code', 'every preference names its recording store');
SELECT fk_ok('loyalty', 'member_identity', 'member_id', 'loyalty', 'member', 'member_id');

-- the sensitive identity fields are in their own table, not with store fields
SELECT hasnt_column('loyalty', 'member', 'id_number_cipher', 'member has no ID number');
SELECT hasnt_column('loyalty', 'member_profile', 'id_number_cipher', 'profile has no ID number');
SELECT hasnt_column('loyalty', 'member_profile', 'bank_card_cipher', 'profile has no bank card');
SELECT has_column('loyalty', 'member_identity', 'bank_card_cipher', 'identity holds the bank card');

-- the group roles exist and hold no login, no superuser
SELECT is((SELECT count(*)::int FROM pg_roles WHERE rolname IN ('loyalty_frontdesk', 'loyalty_housekeeping',
    'loyalty_fnb', 'loyalty_store_manager', 'loyalty_crm', 'loyalty_marketing', 'loyalty_bi', 'loyalty_dba')
    AND NOT rolcanlogin AND NOT rolsuper), 8, 'eight NOLOGIN group roles');

-- store and BI roles hold no privilege on any base table
SELECT is((SELECT count(*)::int FROM pg_class c, LATERAL aclexplode(c.relacl) a
            WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'r'
              AND c.relname <> 'store'
              AND a.grantee IN ('loyalty_frontdesk'::regrole, 'loyalty_housekeeping'::regrole,
                                'loyalty_fnb'::regrole, 'loyalty_store_manager'::regrole,
                                'loyalty_bi'::regrole)), 0,
          'store and BI roles have no privilege on base tables other than the store list');
SELECT table_privs_are('loyalty', 'member', 'loyalty_frontdesk', ARRAY[]::text[]);
SELECT table_privs_are('loyalty', 'member_identity', 'loyalty_store_manager', ARRAY[]::text[]);
SELECT table_privs_are('loyalty', 'policy', 'loyalty_bi', ARRAY[]::text[]);
SELECT function_privs_are('loyalty', 'create_store', ARRAY['text', 'text', 'text', 'text', 'text'],
    'loyalty_frontdesk', ARRAY[]::text[]);
SELECT function_privs_are('loyalty', 'create_store', ARRAY['text', 'text', 'text', 'text', 'text'],
    'loyalty_dba', ARRAY['EXECUTE']);
SELECT function_privs_are('loyalty', 'policy_set', ARRAY['text', 'timestamptz', 'text'],
    'loyalty_marketing', ARRAY[]::text[]);

-- constraints reject bad rows with named constraints
SELECT throws_ok($$INSERT INTO loyalty.store VALUES ('Bad', 'x', 'b', 'r', 'Asia/Shanghai')$$,
    '23514', NULL, 'store code format is enforced');
SELECT throws_ok($$INSERT INTO loyalty.store VALUES ('ok', 'x', 'b', 'r', 'Nowhere/Zone')$$,
    '23514', NULL, 'store time zone is enforced');
SELECT lives_ok($$SELECT loyalty.store_create(gen_random_uuid()::text, 'tap1', 'Tap One', 'tap', 'r', 'Asia/Shanghai')$$,
    'create a store');
SELECT throws_ok($$INSERT INTO loyalty.member (card_no, home_store) VALUES ('123456789012', 'tap1')$$,
    '23514', NULL, 'card numbers carry a valid check digit');
SELECT throws_ok($$INSERT INTO loyalty.stay (member_id, store_code, check_in, check_out)
    SELECT member_id, 'tap1', '2026-01-02', '2026-01-01' FROM loyalty.member_enroll(gen_random_uuid()::text, 'tap1', 'Tester')$$,
    '23514', NULL, 'check-out before check-in is refused');
SELECT throws_ok($$INSERT INTO loyalty.member_profile (member_id, full_name, phone)
    SELECT member_id, 'X', 'not a phone' FROM loyalty.member_enroll(gen_random_uuid()::text, 'tap1', 'Phone Tester')$$,
    '23514', NULL, 'phone format is enforced');

SELECT * FROM finish();
ROLLBACK;
