-- The trace each step was taken in, for an order's timeline to link to (ADR 0031): an
-- order's trace runs from the webhook through the transform to the ERP writer; a shipment
-- and an exception have the trace of the service that recorded them. NULL without
-- OpenTelemetry.
ALTER TABLE order_ledger ADD COLUMN trace_id text;
ALTER TABLE shipment_ledger ADD COLUMN trace_id text;
ALTER TABLE exceptions ADD COLUMN trace_id text;
