-- Preferences: recorded at one store, chain-wide (known at every store) or
-- store-only (known at the recording store only).

CREATE TABLE loyalty.member_preference (
    preference_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    member_id     uuid NOT NULL REFERENCES loyalty.member ON DELETE CASCADE,
    category      text NOT NULL
        CONSTRAINT preference_category_valid CHECK (category IN
            ('pillow', 'allergy', 'floor', 'lighting', 'bed', 'crib',
             'smoking', 'room', 'dining', 'other')),
    value         text NOT NULL
        CONSTRAINT preference_value_length CHECK (length(value) BETWEEN 1 AND 200),
    scope         text NOT NULL DEFAULT 'chain'
        CONSTRAINT preference_scope_valid CHECK (scope IN ('chain', 'store')),
    store_code    text NOT NULL REFERENCES loyalty.store,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    recorded_by   name NOT NULL DEFAULT session_user,
    retired_at    timestamptz
);
COMMENT ON TABLE loyalty.member_preference IS 'Guest preferences; scope chain is known at every store, scope store only at store_code';
CREATE INDEX member_preference_member_idx ON loyalty.member_preference (member_id);
SELECT pg_catalog.pg_extension_config_dump('loyalty.member_preference', '');
