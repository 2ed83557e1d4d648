-- Exception notifications (ADR 0032): what each team is to be told, queued by the ops
-- service's consumer of exception events (and its overdue check), sent in batches by one
-- feed per channel whose cursor is the last queue id it delivered.
CREATE TABLE notification_queue (
    id           bigserial   PRIMARY KEY,
    tenant       text        NOT NULL,
    owner        text        NOT NULL,
    -- raised | overdue
    event        text        NOT NULL,
    exception_id uuid        NOT NULL REFERENCES exceptions (id),
    queued_at    timestamptz NOT NULL DEFAULT now(),
    -- A team hears once that an exception was raised, and once that it went overdue,
    -- however often the event is delivered or the problem seen again.
    CONSTRAINT notification_queue_once UNIQUE (exception_id, event)
);
CREATE INDEX notification_queue_channel ON notification_queue (tenant, owner, event, id);
