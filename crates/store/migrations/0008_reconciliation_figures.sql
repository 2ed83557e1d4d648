-- What each check found in figures, so the month-end report is a read of recorded facts:
-- the same period gives the same figures when regenerated (ADR 0029).
ALTER TABLE reconciliation
    -- Centra's order date (the report's period is by order date).
    ADD COLUMN order_date date,
    -- {"centra": {...}, "erp": {...} | null, "ledger": {...} | null}: minor units of
    -- `currency`, tax by normalised rate; written by the reconciler (`Figures`).
    ADD COLUMN figures jsonb NOT NULL DEFAULT '{}',
    -- Every variance found: [{"order","cause","owner","money_minor","currency","detail",
    -- "erp_reference"}].
    ADD COLUMN variances jsonb NOT NULL DEFAULT '[]';
CREATE INDEX reconciliation_period_idx ON reconciliation (tenant, order_date);

-- ERP documents no Centra order explains (entered by hand, another system's), as found by
-- the reconciler's walk through the ERP: the month-end report lists those of its period.
CREATE TABLE unexplained_documents (
    tenant        text        NOT NULL,
    erp_reference text        NOT NULL,
    -- The document's own date, as the ERP gives it.
    document_date date,
    currency      text        NOT NULL,
    gross_minor   bigint      NOT NULL,
    -- The variance as reported (cause `unexplained`).
    variance      jsonb       NOT NULL,
    found_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, erp_reference)
);
