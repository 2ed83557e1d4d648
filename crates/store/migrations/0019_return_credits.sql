-- Returns credited in the ERP (ADR 0037): one row per completed Centra return. The row is
-- written, priced, before the credit is sent, so a retry sends the very same money; and
-- the units and shipping every earlier return of the order took are what the next one is
-- priced against, so all returns of a line add up to exactly what it charged.
CREATE TABLE return_credits (
    tenant          text        NOT NULL,
    return_id       bigint      NOT NULL,
    order_number    bigint      NOT NULL,
    -- crediting: priced, being sent | credited: the ERP holds the credit document |
    -- not_credited: refused or impossible (finance has the exception); priced again on replay
    state           text        NOT NULL,
    currency        text        NOT NULL,
    gross_minor     bigint      NOT NULL,
    tax_minor       bigint      NOT NULL,
    shipping_minor  bigint      NOT NULL DEFAULT 0,
    -- Units returned per Centra order line: {"<line id>": units}.
    units           jsonb       NOT NULL,
    -- Shipping credited per shipping line of the order, in its order: [[gross, tax], ...].
    shipping        jsonb       NOT NULL DEFAULT '[]',
    -- The credit document as priced (the connector's input).
    credit          jsonb       NOT NULL,
    erp_reference   text,
    reason          text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    credited_at     timestamptz,
    PRIMARY KEY (tenant, return_id),
    CONSTRAINT return_credits_state CHECK (state IN ('crediting', 'credited', 'not_credited'))
);
CREATE INDEX return_credits_order_idx ON return_credits (tenant, order_number);
-- The month-end refunds: credited returns by when they were credited.
CREATE INDEX return_credits_credited_idx ON return_credits (tenant, credited_at)
    WHERE state = 'credited';
