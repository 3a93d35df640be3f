-- Alarm rules of kind 'bit_mask': a condition on a register of event or
-- status bits (docs/specs/alarms.md). Keep equivalent to
-- migrations/sqlite/0011_bit_mask_rules.sql.

ALTER TABLE alarm_rules DROP CONSTRAINT alarm_rules_kind_check;
ALTER TABLE alarm_rules ADD CONSTRAINT alarm_rules_kind_check
    CHECK (kind IN ('threshold', 'rate_of_change', 'anomaly', 'bit_mask'));
