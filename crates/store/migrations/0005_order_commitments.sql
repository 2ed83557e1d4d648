-- Stock commitments, one row per order instead of one per line (ADR 0020): the inventory
-- pusher's consumer writes every ready order, and a row per line (about three per order,
-- each with a four-column text key) made that the costliest statement of the order spine.
CREATE TABLE order_commitments (
    tenant       TEXT        NOT NULL,
    order_number BIGINT      NOT NULL,
    -- The order's lines, position by position: ERP item, Centra SKU, units.
    erp_items    TEXT[]      NOT NULL,
    skus         TEXT[]      NOT NULL,
    quantities   BIGINT[]    NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_number),
    CHECK (cardinality(erp_items) = cardinality(skus)
           AND cardinality(skus) = cardinality(quantities))
);

INSERT INTO order_commitments (tenant, order_number, erp_items, skus, quantities, created_at)
SELECT tenant, order_number,
       array_agg(erp_item ORDER BY erp_item, sku),
       array_agg(sku ORDER BY erp_item, sku),
       array_agg(quantity ORDER BY erp_item, sku),
       min(created_at)
FROM stock_commitments
GROUP BY tenant, order_number;

DROP TABLE stock_commitments;
