-- Returns ingest saw pending in Centra (ADR 0037): read again by id every
-- `centra.returns_recheck` until Centra completes or deletes them, so a completion whose
-- webhook and event were both lost is still credited. Centra documents no listing of
-- returns by time, so this is the returns' resync. Forgotten after 90 days.
CREATE TABLE pending_returns (
    tenant        text        NOT NULL,
    return_id     bigint      NOT NULL,
    order_number  bigint      NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    checked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, return_id)
);
CREATE INDEX pending_returns_due ON pending_returns (tenant, checked_at);
