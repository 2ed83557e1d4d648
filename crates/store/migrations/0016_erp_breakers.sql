-- Each erp-writer replica's circuit breaker per tenant, as it last said (issue 18: the
-- console's sync health shows whether posting to the ERP is paused). A replica refreshes
-- `seen_at` while its breaker is open; a row not refreshed for a minute is a replica gone.
CREATE TABLE erp_breakers (
    tenant   text        NOT NULL,
    replica  uuid        NOT NULL,
    open     boolean     NOT NULL,
    since    timestamptz NOT NULL DEFAULT now(),
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, replica)
);
