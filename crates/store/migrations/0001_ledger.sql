-- The order ledger: one row per Centra order per tenant, proving where it is.
CREATE TABLE order_ledger (
    tenant              text        NOT NULL,
    order_number        bigint      NOT NULL,
    centra_order_id     text        NOT NULL DEFAULT '',
    -- held | rejected | cancelled | ready | posting | possibly_created | posted
    state               text        NOT NULL,
    -- The state before the most recent change: tells a claim whether an earlier attempt may
    -- have reached the ERP, and the transform whether it just released a blocked order.
    previous_state      text,
    snapshot_hash       text        NOT NULL,
    snapshot_fetched_at timestamptz NOT NULL,
    -- Hash of the sales order's lines and totals: a newer snapshot with the same
    -- fingerprint changes nothing the ERP holds (a status change, say).
    order_fingerprint   text        NOT NULL DEFAULT '',
    currency            text        NOT NULL DEFAULT '',
    gross_minor         bigint,
    tax_minor           bigint,
    erp_reference       text,
    erp_gross_minor     bigint,
    erp_tax_minor       bigint,
    post_attempts       integer     NOT NULL DEFAULT 0,
    first_accepted_at   timestamptz,
    received_at         timestamptz NOT NULL DEFAULT now(),
    transformed_at      timestamptz,
    posting_started_at  timestamptz,
    posted_at           timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_number),
    CONSTRAINT order_ledger_state CHECK (state IN
        ('held', 'rejected', 'cancelled', 'ready', 'posting', 'possibly_created', 'posted'))
) WITH (fillfactor = 80);
-- No index on state: it changes on every step, and an indexed column that changes makes
-- every update a non-HOT update. fillfactor 80 leaves room on each page for HOT updates.
-- Per-tenant scans use the primary key.

-- The snapshots of orders that wait (held, rejected, cancelled), so a blocked order can be
-- released from exactly what Centra said, without asking Centra again. Snapshots of ready
-- orders stay in the CENTRA stream (14 days).
CREATE TABLE order_snapshots (
    tenant        text        NOT NULL,
    order_number  bigint      NOT NULL,
    snapshot_hash text        NOT NULL,
    fetched_at    timestamptz NOT NULL,
    -- lz4 compresses JSON well at a fraction of pglz's CPU cost.
    body          bytea       COMPRESSION lz4 NOT NULL,
    PRIMARY KEY (tenant, order_number, snapshot_hash)
);

-- Exceptions: one open row per (tenant, kind, key); seeing it again bumps the count.
CREATE TABLE exceptions (
    id             uuid        PRIMARY KEY,
    tenant         text        NOT NULL,
    kind           text        NOT NULL,
    owner          text        NOT NULL,
    severity       text        NOT NULL,
    dedupe_key     text        NOT NULL,
    message        text        NOT NULL,
    reason         text        NOT NULL,
    order_number   bigint,
    amount_minor   bigint,
    currency       text,
    service        text        NOT NULL,
    source_subject text,
    payload        bytea       NOT NULL DEFAULT '\x',
    -- open | retrying | resolved | ignored
    state          text        NOT NULL DEFAULT 'open',
    state_reason   text,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    seen_count     bigint      NOT NULL DEFAULT 1,
    sla_due        timestamptz NOT NULL,
    resolved_at    timestamptz,
    CONSTRAINT exceptions_state CHECK (state IN ('open', 'retrying', 'resolved', 'ignored'))
);
CREATE UNIQUE INDEX exceptions_open_key ON exceptions (tenant, kind, dedupe_key)
    WHERE state IN ('open', 'retrying');
CREATE INDEX exceptions_order_idx ON exceptions (tenant, order_number);
CREATE INDEX exceptions_inbox_idx ON exceptions (tenant, owner, state);

-- Cursors and watermarks of long-running loops (Events queue, resync, shipment feeds).
CREATE TABLE checkpoints (
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- Centra SKU → ERP item, per tenant.
CREATE TABLE sku_mappings (
    tenant     text        NOT NULL,
    centra_sku text        NOT NULL,
    erp_item   text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, centra_sku)
);
