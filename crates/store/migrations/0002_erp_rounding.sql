-- An explicit rounding line the ERP connector added so that the ERP's total equals what the
-- customer paid (ERPs that recompute tax from net prices, such as Tryton). NULL before posting.
ALTER TABLE order_ledger ADD COLUMN erp_rounding_minor BIGINT;
