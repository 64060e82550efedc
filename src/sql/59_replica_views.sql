-- Store-mode views that show member data are owned by loyalty_view_owner,
-- which cannot bypass row level security (docs/privacy.md).  The DBA views
-- over replication statistics (replica_status, store_replica_state) stay
-- with the extension owner: they read pg_replication_slots and
-- pg_stat_subscription, and hold no member data.
GRANT SELECT ON loyalty.outbox, loyalty.outbox_result, loyalty.replica_node TO loyalty_view_owner;
ALTER VIEW loyalty.store_outbox_status OWNER TO loyalty_view_owner;
ALTER VIEW loyalty.store_member_preferences OWNER TO loyalty_view_owner;
