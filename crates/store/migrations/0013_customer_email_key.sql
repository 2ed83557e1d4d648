-- Customer service finds an order by the customer's e-mail (issue 17): the address is kept
-- only as a brand-scoped hash (ferry_domain::lookup::email_key), never in clear.
ALTER TABLE order_ledger ADD COLUMN customer_email_key bytea;
CREATE INDEX order_ledger_customer_email ON order_ledger (tenant, customer_email_key)
    WHERE customer_email_key IS NOT NULL;
