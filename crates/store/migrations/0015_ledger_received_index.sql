-- The console's sync health charts the orders received per minute over the last hour
-- (issue 18). `received_at` is set once, on insert, so this index never stops the
-- ledger's later updates from being HOT.
CREATE INDEX order_ledger_received ON order_ledger (tenant, received_at);
