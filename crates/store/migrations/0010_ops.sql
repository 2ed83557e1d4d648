-- The operations API (ADR 0031): who may act (API tokens, stored hashed), to whom an
-- exception is given, and the append-only audit of every action on an exception.

-- A person or a team the exception is given to; "assigned" is an open exception with one.
ALTER TABLE exceptions ADD COLUMN assignee text;
-- When someone last had Ferry re-drive the blocked work (state `retrying` since).
ALTER TABLE exceptions ADD COLUMN retried_at timestamptz;

CREATE TABLE exception_audit (
    id           bigserial   PRIMARY KEY,
    exception_id uuid        NOT NULL REFERENCES exceptions (id),
    tenant       text        NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    -- The token's name: a person, or a system.
    actor        text        NOT NULL,
    -- resolve | ignore | assign | comment | retry
    action       text        NOT NULL,
    note         text        NOT NULL DEFAULT '',
    -- The caller's id for the call: the same call retried acts once.
    request_id   text
);
CREATE INDEX exception_audit_exception ON exception_audit (exception_id, id);
CREATE UNIQUE INDEX exception_audit_request ON exception_audit (actor, request_id)
    WHERE request_id IS NOT NULL;

-- Append-only: what was done stays as it was recorded.
CREATE FUNCTION exception_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'exception_audit is append-only';
END;
$$;
CREATE TRIGGER exception_audit_append_only BEFORE UPDATE OR DELETE ON exception_audit
    FOR EACH ROW EXECUTE FUNCTION exception_audit_append_only();

CREATE TABLE api_tokens (
    id           uuid        PRIMARY KEY,
    -- Who holds it (a person's e-mail, or a system's name): the actor in the audit.
    name         text        NOT NULL,
    role         text        NOT NULL,
    -- The tenants the holder may see; '{*}' for every tenant.
    tenants      text[]      NOT NULL,
    -- SHA-256 of the secret: the secret itself is shown once, at creation.
    secret_hash  bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CONSTRAINT api_tokens_role CHECK
        (role IN ('finance', 'operations', 'customer_service', 'engineering', 'admin'))
);

-- The inbox's order, most overdue first: a team's exceptions in a state, and every open one.
CREATE INDEX exceptions_inbox_due_idx ON exceptions (tenant, owner, state, sla_due, id);
CREATE INDEX exceptions_sla_idx ON exceptions (tenant, sla_due, id) WHERE state IN ('open', 'retrying');

-- Bulk actions over a filter, run by the ops service and followed by their progress.
CREATE TABLE bulk_operations (
    id               uuid        PRIMARY KEY,
    tenant           text        NOT NULL,
    action           text        NOT NULL,
    filter           text        NOT NULL,
    note             text        NOT NULL DEFAULT '',
    created_by       text        NOT NULL,
    -- The creator's role when it started (what it may act on).
    role             text        NOT NULL,
    request_id       text,
    -- running | done | cancelled
    state            text        NOT NULL DEFAULT 'running',
    total            bigint      NOT NULL DEFAULT 0,
    succeeded        bigint      NOT NULL DEFAULT 0,
    failed           bigint      NOT NULL DEFAULT 0,
    -- The first failures: ["<exception name>: <why>", …].
    errors           jsonb       NOT NULL DEFAULT '[]',
    -- The last exception handled (due time, id): a resumed operation goes on after it.
    after_due        timestamptz,
    after_id         uuid,
    cancel_requested boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE UNIQUE INDEX bulk_operations_request ON bulk_operations (created_by, request_id)
    WHERE request_id IS NOT NULL;
