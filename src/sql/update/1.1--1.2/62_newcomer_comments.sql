-- newcomer: a COMMENT on every function, view and table of schema loyalty
-- whose name does not start with "_" (docs/development.md, "Comments").
COMMENT ON FUNCTION loyalty.card_number_new() IS
    'A fresh 12-digit card number with a Luhn check digit, from the strong random source';
COMMENT ON FUNCTION loyalty.card_number_valid(text) IS
    'Whether a card number has 12 digits and a correct Luhn check digit';
COMMENT ON FUNCTION loyalty.caller_store() IS
    'The caller''s store code from role membership (NULL at HQ and for non-staff)';
COMMENT ON FUNCTION loyalty.caller_is_hq() IS
    'Whether the caller is HQ staff (from role membership)';
COMMENT ON FUNCTION loyalty.audit_head() IS
    'The latest audit record''s id and hash, to keep outside the database as the chain''s anchor';
-- the department views keep these comments when regenerate_views() replaces them
COMMENT ON VIEW loyalty.member_frontdesk IS 'Members as front desks see them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_housekeeping IS 'Members as housekeeping sees them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_fnb IS 'Members as F&B sees them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_store_manager IS 'Members as store managers see them: fields masked or hidden by the field policy; rows by row level security and by reach: a stay, booking or enrolment at the store, or a lookup of this transaction';
COMMENT ON VIEW loyalty.member_crm IS 'Members as HQ CRM sees them: fields as the field policy grants CRM';
COMMENT ON VIEW loyalty.member_marketing IS 'Members as HQ marketing sees them: fields masked or hidden by the field policy';
COMMENT ON VIEW loyalty.member_dba IS 'Members as HQ DBAs see them: fields masked or hidden by the field policy';
