-- privacy: the 1.2 API names (issue 11, structure): noun_verb, concept first,
-- the idempotency key first; the 1.1 names become wrappers (99_deprecated).
-- Generated from the difference between 1.1 and src/sql/41_privacy.sql.

CREATE FUNCTION loyalty.views_regenerate() RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dept text;
    cols text;
    n integer := 0;
    fields constant text[] := ARRAY['card_no', 'full_name', 'gender', 'birth_date',
        'nationality', 'phone', 'email', 'address', 'id_number', 'bank_card'];
BEGIN
    FOREACH dept IN ARRAY ARRAY['frontdesk', 'housekeeping', 'fnb', 'store_manager',
                                'crm', 'marketing', 'dba'] LOOP
        SELECT string_agg(pg_catalog.format('%s AS %I',
                   loyalty._field_expr(f.field, coalesce(c.treatment, 'hide')), f.field),
                   ', ' ORDER BY f.ord)
          INTO cols
          FROM unnest(fields) WITH ORDINALITY AS f(field, ord)
          LEFT JOIN loyalty.field_policy_current c
                 ON c.department = dept AND c.field = f.field;
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE VIEW loyalty.%I WITH (security_barrier) AS '
            'SELECT m.member_id, m.status, m.home_store, m.tier, m.tier_valid_until, '
            'm.time_zone, %s '
            'FROM loyalty.member m '
            'LEFT JOIN loyalty.member_profile p ON p.member_id = m.member_id '
            'LEFT JOIN loyalty.member_identity i ON i.member_id = m.member_id',
            'member_' || dept, cols);
        EXECUTE pg_catalog.format('ALTER VIEW loyalty.%I OWNER TO loyalty_view_owner',
                                  'member_' || dept);
        EXECUTE pg_catalog.format('REVOKE ALL ON loyalty.%I FROM PUBLIC', 'member_' || dept);
        EXECUTE pg_catalog.format('GRANT SELECT ON loyalty.%I TO %I',
                                  'member_' || dept, 'loyalty_' || dept);
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.views_regenerate() IS
    'Rebuild the masked member views from the field policy (runs by itself when the policy changes)';

CREATE OR REPLACE FUNCTION loyalty._field_policy_changed() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM loyalty.views_regenerate();
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION loyalty._member_erase(member_id uuid, reason text)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM 1 FROM loyalty.member m
      WHERE m.member_id = _member_erase.member_id AND m.status <> 'erased' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM loyalty._member_not_found();
    END IF;
    -- the record first: an erasure that fails is still on record as tried
    PERFORM loyalty._audit(member_id, 'erase', ARRAY['*'], left(reason, 200));
    DELETE FROM loyalty.member_profile p WHERE p.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_identity i WHERE i.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_preference x WHERE x.member_id = _member_erase.member_id;
    DELETE FROM loyalty.member_consent x WHERE x.member_id = _member_erase.member_id;
    UPDATE loyalty.member_tag t SET note = NULL WHERE t.member_id = _member_erase.member_id;
    -- risk tags stay (an amount owed is the chain's record), their notes go
    UPDATE loyalty.risk_tag t SET note = '[erased]' WHERE t.member_id = _member_erase.member_id;
    UPDATE loyalty.member m
       SET status = 'erased', card_no = loyalty.card_number_new(), time_zone = NULL,
           updated_at = now()
     WHERE m.member_id = _member_erase.member_id;
END
$$;

REVOKE ALL ON FUNCTION loyalty.views_regenerate() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.views_regenerate() TO loyalty_crm, loyalty_dba;
