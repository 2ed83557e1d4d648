-- Fulfilment feedback: each ERP shipment and the Centra shipment Ferry made of it, the
-- shipment feed's cursor, and the per-tenant budget of Centra mutations shared by every
-- service writing to the same Centra instance.

CREATE TABLE shipment_ledger (
    tenant              TEXT        NOT NULL,
    erp_shipment_id     TEXT        NOT NULL,
    order_number        BIGINT      NOT NULL,
    -- sending: a Centra call may be under way or may have happened (look it up first);
    -- sent: Centra has it; merged: nothing to tell Centra yet (half a bundle);
    -- waiting_tracking: the ERP has not given a tracking number yet; failed: an exception says why.
    state               TEXT        NOT NULL,
    -- Item quantities of this ERP shipment: {"<erp item>": units}.
    items               JSONB       NOT NULL,
    carrier             TEXT,
    tracking_number     TEXT,
    erp_shipped_at      TEXT,
    centra_shipment_id  BIGINT,
    centra_completed_at TIMESTAMPTZ,
    email_sent          BOOLEAN     NOT NULL DEFAULT false,
    captured            BOOLEAN     NOT NULL DEFAULT false,
    attempts            INT         NOT NULL DEFAULT 0,
    first_seen_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, erp_shipment_id)
);
CREATE INDEX shipment_ledger_order ON shipment_ledger (tenant, order_number);

CREATE TABLE feed_cursor (
    tenant     TEXT        NOT NULL,
    feed       TEXT        NOT NULL,
    cursor     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, feed)
);

-- Token buckets mirroring Centra's mutation buckets, in micro-tokens (integers: exact).
CREATE TABLE centra_budget (
    tenant        TEXT        NOT NULL,
    bucket        TEXT        NOT NULL,
    micro_tokens  BIGINT      NOT NULL,
    refilled_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, bucket)
);
