-- Stock drift as the reconciler finds it (ADR 0030): a SKU whose sellable stock in Centra
-- differs from what Ferry expects by more than the brand allows. A row is opened when the
-- drift is first found and closed (`cleared_at`) when a later check finds it gone; the
-- figures of the first finding never change, so a month's report lists the same drift when
-- regenerated. The last check's figures are kept beside them.
CREATE TABLE stock_drift (
    id            bigserial   PRIMARY KEY,
    tenant        text        NOT NULL,
    warehouse     bigint      NOT NULL,
    sku           text        NOT NULL,
    -- What Ferry expected Centra to offer, and what Centra offered, when first found.
    expected      bigint      NOT NULL,
    centra        bigint      NOT NULL,
    found_at      timestamptz NOT NULL DEFAULT now(),
    last_expected bigint      NOT NULL,
    last_centra   bigint      NOT NULL,
    checked_at    timestamptz NOT NULL DEFAULT now(),
    cleared_at    timestamptz
);
CREATE UNIQUE INDEX stock_drift_open ON stock_drift (tenant, warehouse, sku)
    WHERE cleared_at IS NULL;
CREATE INDEX stock_drift_found ON stock_drift (tenant, found_at);
-- The orders Ferry heard of since a SKU was last pushed (the reconciler's view of what
-- Centra has allocated since).
CREATE INDEX order_commitments_created ON order_commitments (tenant, created_at);
