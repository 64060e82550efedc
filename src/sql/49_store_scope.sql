-- Row level security for the store-scoped tables of other areas, following
-- the pattern of docs/privacy.md ("Row level security per store"): the
-- extension's SECURITY DEFINER functions run as the extension owner, so
-- these policies bind every other reader, including views owned by
-- loyalty_view_owner.

-- point ledger: lots and entries are a store's transactions
ALTER TABLE loyalty.point_lot ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.point_entry ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.point_lot FOR SELECT
    USING (loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.point_entry FOR SELECT
    USING (loyalty.store_visible(store_code));

-- benefits: a store's own benefits and the uses recorded at a store
ALTER TABLE loyalty.benefit_grant ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE loyalty.benefit_use ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY store_scope ON loyalty.benefit_grant FOR SELECT
    USING (store_code IS NULL OR loyalty.store_visible(store_code));
CREATE POLICY store_scope ON loyalty.benefit_use FOR SELECT
    USING (loyalty.store_visible(store_code));

-- every view is owned by loyalty_view_owner, which cannot bypass row level
-- security (docs/privacy.md); the tier engine's job progress view too
GRANT SELECT ON loyalty.tier_job TO loyalty_view_owner;
ALTER VIEW loyalty.tier_job_progress OWNER TO loyalty_view_owner;
