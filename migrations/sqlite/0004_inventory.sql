-- Parts and inventory, labour and external costs
-- (docs/specs/inventory-and-costs.md). Money is integer paise (1/100 INR);
-- quantities are whole units of the part's `unit`. Times are Unix ms.
-- Keep equivalent to migrations/postgres/0004_inventory.sql.

CREATE TABLE parts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    part_number     TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    unit            TEXT    NOT NULL,
    unit_cost_paise INTEGER NOT NULL CHECK (unit_cost_paise >= 0),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    version         INTEGER NOT NULL
);

-- One or more stores (warehouses, containers) per site.
CREATE TABLE stores (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    name       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (site_id, name)
);

-- Stock of one part in one store. The never-negative rule is enforced by
-- single-statement conditional updates in the code and, as a second line,
-- by this CHECK. `reorder_raised` (0/1) latches the reorder notification
-- until the stock is received above the reorder point again.
CREATE TABLE stock (
    store_id       INTEGER NOT NULL REFERENCES stores (id),
    part_id        INTEGER NOT NULL REFERENCES parts (id),
    on_hand        INTEGER NOT NULL,
    reserved       INTEGER NOT NULL,
    reorder_point  INTEGER NOT NULL,
    reorder_qty    INTEGER NOT NULL,
    reorder_raised INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    PRIMARY KEY (store_id, part_id),
    CONSTRAINT stock_never_negative CHECK (on_hand >= 0 AND reserved >= 0 AND reserved <= on_hand),
    CONSTRAINT stock_reorder CHECK (reorder_point >= 0 AND reorder_qty >= 0 AND reorder_raised IN (0, 1))
);

-- Parts set aside for a work order: reserved -> consumed (on COMPLETE) or
-- released (on CANCEL or by hand). unit_cost_paise: at reservation, then
-- the part's cost at consumption.
CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id   INTEGER NOT NULL REFERENCES work_orders (id),
    store_id        INTEGER NOT NULL,
    part_id         INTEGER NOT NULL,
    quantity        INTEGER NOT NULL CHECK (quantity > 0),
    state           TEXT    NOT NULL CHECK (state IN ('reserved', 'consumed', 'released')),
    unit_cost_paise INTEGER NOT NULL CHECK (unit_cost_paise >= 0),
    created_by      INTEGER NOT NULL REFERENCES users (id),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    FOREIGN KEY (store_id, part_id) REFERENCES stock (store_id, part_id)
);
CREATE INDEX reservations_wo ON reservations (work_order_id, state);

CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL CHECK (kind IN ('reorder')),
    part_id       INTEGER NOT NULL REFERENCES parts (id),
    store_id      INTEGER NOT NULL REFERENCES stores (id),
    on_hand       INTEGER NOT NULL,
    reorder_point INTEGER NOT NULL,
    reorder_qty   INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL
);

-- Labour: cost_paise = round(minutes * hourly_rate_paise / 60), fixed at entry.
CREATE TABLE time_entries (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id     INTEGER NOT NULL REFERENCES work_orders (id),
    user_id           INTEGER NOT NULL REFERENCES users (id),
    minutes           INTEGER NOT NULL CHECK (minutes > 0),
    start_ms          INTEGER,
    end_ms            INTEGER,
    hourly_rate_paise INTEGER NOT NULL CHECK (hourly_rate_paise >= 0),
    cost_paise        INTEGER NOT NULL CHECK (cost_paise >= 0),
    note              TEXT    NOT NULL,
    created_by        INTEGER NOT NULL REFERENCES users (id),
    created_ms        INTEGER NOT NULL
);
CREATE INDEX time_entries_wo ON time_entries (work_order_id);

CREATE TABLE external_costs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id INTEGER NOT NULL REFERENCES work_orders (id),
    vendor        TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    amount_paise  INTEGER NOT NULL CHECK (amount_paise >= 0),
    created_by    INTEGER NOT NULL REFERENCES users (id),
    created_ms    INTEGER NOT NULL
);
CREATE INDEX external_costs_wo ON external_costs (work_order_id);
