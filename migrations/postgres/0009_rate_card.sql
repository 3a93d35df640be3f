-- Labour rate card: a user's hourly rate in paise, used for their time
-- entries when the entry names no rate (docs/specs/inventory-and-costs.md).
-- NULL: no rate on the card. Keep equivalent to the other database's 0009.
ALTER TABLE users ADD COLUMN hourly_rate_paise BIGINT CHECK (hourly_rate_paise BETWEEN 0 AND 10000000);
