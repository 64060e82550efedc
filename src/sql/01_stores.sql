-- Stores (hotels) of the chain.

CREATE TABLE loyalty.store (
    store_code  text PRIMARY KEY
        CONSTRAINT store_code_format CHECK (store_code ~ '^[a-z][a-z0-9_]{0,15}$'),
    name        text NOT NULL
        CONSTRAINT store_name_length CHECK (length(name) BETWEEN 1 AND 200),
    brand       text NOT NULL
        CONSTRAINT store_brand_format CHECK (brand ~ '^[a-z][a-z0-9_]{0,31}$'),
    region      text NOT NULL
        CONSTRAINT store_region_length CHECK (length(region) BETWEEN 1 AND 100),
    time_zone   text NOT NULL
        CONSTRAINT store_time_zone_valid CHECK (loyalty._valid_time_zone(time_zone)),
    status      text NOT NULL DEFAULT 'open'
        CONSTRAINT store_status_valid CHECK (status IN ('open', 'closed')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE loyalty.store IS 'Hotels ("stores") of the chain';
SELECT pg_catalog.pg_extension_config_dump('loyalty.store', '');
