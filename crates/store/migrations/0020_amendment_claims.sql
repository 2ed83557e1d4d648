-- Which change of an order is being applied to the ERP (ADR 0035). Changes of different
-- orders are applied side by side, many per ERP request; those of one order one after
-- another, so that an older change never lands after a newer one. A claim left by a
-- writer that stopped mid-change lapses at `claimed_until`.
CREATE TABLE amendment_claims (
    tenant        text        NOT NULL,
    order_number  bigint      NOT NULL,
    snapshot_hash text        NOT NULL,
    claimed_until timestamptz NOT NULL,
    PRIMARY KEY (tenant, order_number)
);
