-- The anomaly model registry (docs/specs/model-registry.md): uploaded
-- models, their assignment to gateways or asset classes (every change a
-- row, so a rollback knows the previous version), what each gateway reports
-- it runs, and the drift reports it sends. Keep equivalent to
-- migrations/postgres/0010_models.sql.

CREATE TABLE anomaly_models (
    model_id      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    asset_class   TEXT    NOT NULL,
    feature_set   TEXT    NOT NULL,
    -- The metadata file as uploaded (docs/specs/anomaly-models.md §2).
    metadata_json TEXT    NOT NULL,
    onnx          BLOB    NOT NULL,
    onnx_sha256   TEXT    NOT NULL,
    uploaded_by   TEXT    NOT NULL,
    uploaded_ms   INTEGER NOT NULL,
    PRIMARY KEY (model_id, version)
);

-- target_kind 'gateway' (target = gateway id) or 'asset_class' (target =
-- wind_turbine, pv_inverter, bess_rack). The newest row per
-- (target_kind, target, model_id) is the assignment in force.
CREATE TABLE model_assignments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target_kind TEXT    NOT NULL CHECK (target_kind IN ('gateway', 'asset_class')),
    target      TEXT    NOT NULL,
    model_id    TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('assign', 'rollback')),
    assigned_by TEXT    NOT NULL,
    assigned_ms INTEGER NOT NULL,
    FOREIGN KEY (model_id, version) REFERENCES anomaly_models (model_id, version)
);
CREATE INDEX model_assignments_target ON model_assignments (target_kind, target, model_id, id);

-- What a gateway said it runs at its last sync.
CREATE TABLE gateway_models (
    gateway_id  TEXT    NOT NULL REFERENCES gateways (id),
    model_id    TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    onnx_sha256 TEXT    NOT NULL,
    last_error  TEXT,
    reported_ms INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, model_id)
);

-- One row per drift report: per asset, the PSI of every feature over the
-- windows the gateway scored since its previous report.
CREATE TABLE model_drift (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway_id    TEXT    NOT NULL REFERENCES gateways (id),
    asset         TEXT    NOT NULL,
    model_id      TEXT    NOT NULL,
    model_version TEXT    NOT NULL,
    windows       INTEGER NOT NULL,
    from_ms       INTEGER NOT NULL,
    to_ms         INTEGER NOT NULL,
    -- JSON array of {feature, psi}, largest first.
    features      TEXT    NOT NULL,
    max_psi       REAL    NOT NULL,
    threshold     REAL    NOT NULL,
    notice        BOOLEAN NOT NULL,
    received_ms   INTEGER NOT NULL
);
CREATE INDEX model_drift_notice ON model_drift (notice, id);
