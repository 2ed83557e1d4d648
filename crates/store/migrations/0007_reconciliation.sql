-- The reconciler's last verdict on each order (ADR 0028): when it was checked against Centra
-- and the ERP, against which version of the ledger row, and what was found. An order is
-- checked again when its ledger row changes, and while it is not reconciled.
CREATE TABLE reconciliation (
    tenant         text        NOT NULL,
    order_number   bigint      NOT NULL,
    -- reconciled | pending | variance
    verdict        text        NOT NULL,
    -- The variances' causes (snake_case names of the reconciler's causes), sorted.
    causes         text[]      NOT NULL DEFAULT '{}',
    -- Money at stake over all variances, in minor units of `currency`.
    money_minor    bigint      NOT NULL DEFAULT 0,
    currency       text        NOT NULL DEFAULT '',
    -- The ledger row's `updated_at` when checked; NULL for an order the ledger does not hold.
    ledger_version timestamptz,
    checked_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, order_number),
    CONSTRAINT reconciliation_verdict CHECK (verdict IN ('reconciled', 'pending', 'variance'))
);
CREATE INDEX reconciliation_open_idx ON reconciliation (tenant, checked_at)
    WHERE verdict <> 'reconciled';
