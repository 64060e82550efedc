-- ledger: the calls check their store against a per-backend set of known
-- stores (issue 19: the store check was a statement on every call); any
-- change to loyalty.store drops the set in every backend.
CREATE TRIGGER store_known_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.store
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty._cache_invalidate();
