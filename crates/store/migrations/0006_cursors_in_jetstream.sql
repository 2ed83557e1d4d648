-- Feed cursors and the resync checkpoint moved to JetStream's key-value store
-- (`<PREFIX>_CURSORS`, written by the feed runner, fenced by revision; ADR 0024). Feeds
-- start again from the beginning once after this migration: what they publish again has the
-- same message ids or is deduplicated by its consumers (the fulfilment ledger, stock
-- versions, the order ledger).
DROP TABLE feed_cursor;
DROP TABLE checkpoints;

-- When the stock source read each level from the ERP (µs since the epoch): an order posted
-- after it may not show in it yet, so it still counts as pending for that size.
ALTER TABLE stock_levels ADD COLUMN erp_read_at BIGINT NOT NULL DEFAULT 0;
