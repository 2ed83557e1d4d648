-- Inventory pushing: per Centra warehouse and SKU, what the ERP last said is available and
-- what Centra was last told; and the units of Centra orders Ferry knows about that Centra
-- holds allocated (to compute sellable stock without selling them twice).

CREATE TABLE stock_levels (
    tenant          TEXT        NOT NULL,
    -- Centra's warehouse id.
    warehouse       BIGINT      NOT NULL,
    sku             TEXT        NOT NULL,
    erp_available   BIGINT      NOT NULL,
    -- The ERP feed's sequence number (or Ferry's read time for ERPs without a feed): an
    -- older observation never overwrites a newer one.
    erp_version     BIGINT      NOT NULL,
    -- The physical quantity Centra last accepted, and the sellable stock it meant.
    pushed_physical BIGINT,
    pushed_sellable BIGINT,
    pushed_at       TIMESTAMPTZ,
    -- Why Centra will not take this SKU ('bundle', 'unknown'); NULL when it does.
    skip            TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, warehouse, sku)
);

CREATE TABLE stock_commitments (
    tenant       TEXT        NOT NULL,
    order_number BIGINT      NOT NULL,
    erp_item     TEXT        NOT NULL,
    sku          TEXT        NOT NULL,
    quantity     BIGINT      NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_number, erp_item, sku)
);
