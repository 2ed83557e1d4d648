-- Changes to orders after they reached the ERP (ADR 0035): one row per newer Centra
-- snapshot of a posted order, with what became of it. `applied` changed the ERP document,
-- `refused` the ERP would not (finance acts on the exception), `superseded` a newer change
-- had been applied first, `unsupported` the tenant's ERP connector cannot change orders.
CREATE TABLE order_amendments (
    tenant              text        NOT NULL,
    order_number        bigint      NOT NULL,
    snapshot_hash       text        NOT NULL,
    snapshot_fetched_at timestamptz NOT NULL,
    outcome             text        NOT NULL
        CHECK (outcome IN ('applied', 'refused', 'superseded', 'unsupported')),
    cancelled           boolean     NOT NULL DEFAULT false,
    reason              text        NOT NULL DEFAULT '',
    erp_reference       text        NOT NULL DEFAULT '',
    erp_gross_minor     bigint,
    erp_tax_minor       bigint,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_number, snapshot_hash)
);
