-- The console's pages within their budget with a brand's history (issue 18; measured by
-- `ferry bench ops`):
-- an order found by its ERP document or a shipment's tracking number without reading
-- every row (each is written once; the ledger's posted update now also writes this index
-- entry — its cost on the order spine is in docs/performance.md);
CREATE INDEX order_ledger_erp_reference ON order_ledger (tenant, erp_reference)
    WHERE erp_reference IS NOT NULL;
CREATE INDEX shipment_ledger_tracking ON shipment_ledger (tenant, tracking_number)
    WHERE tracking_number IS NOT NULL;
-- a month's variances by cause from the variances alone;
CREATE INDEX reconciliation_variance_idx ON reconciliation (tenant, order_date)
    WHERE verdict = 'variance';
-- and a month's standing day by day as the reconciler last counted it (at the end of
-- each pass through a brand's orders), instead of counting a million verdicts per page.
CREATE TABLE reconciliation_days (
    tenant      text        NOT NULL,
    day         date        NOT NULL,
    checked     bigint      NOT NULL,
    complete    bigint      NOT NULL,
    accurate    bigint      NOT NULL,
    pending     bigint      NOT NULL,
    -- Per step of the journey (posted, shipped, email, captured, in that order): orders
    -- timed, and those late against the brand's targets.
    timed       bigint[]    NOT NULL,
    late        bigint[]    NOT NULL,
    counted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, day)
);
