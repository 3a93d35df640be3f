//! Alarms, one scenario run against SQLite always and against Postgres
//! with `--features postgres-tests` (docs/specs/alarms.md): telemetry goes
//! through the real ingest endpoint; the evaluator runs as in production
//! (a background task woken by ingest). A threshold rule held for `for_s`
//! raises exactly one alarm and one corrective work order carrying the
//! evidence; more high values do not raise again; acknowledge; the work
//! order completes; the value back past `clear_value` clears the alarm and
//! verifies the repair; a rate-of-change rule fires on a jump. An anomaly
//! rule turns the edge's anomaly events (wire v3) into an alarm carrying
//! the model's explanation and a predictive work order, cleared by the
//! model's clear event; events are stored once per batch, and another
//! gateway's asset of the same name is not this asset. A bit-mask rule
//! on an inverter's event register raises on its bit only and clears when
//! that bit goes, whatever the other bits do.
#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use dcmms_cloud::auth::Role;
use dcmms_cloud::{audit, gateways, on_db, testing};
use dcmms_shared::wire::{Compression, encode};
use dcmms_shared::{AnomalyEvent, AnomalyKind, Batch, Contribution, Quality, Sample, Series};
use serde_json::{Value, json};
use std::time::Duration;
use support::Ctx;
use tokio_util::sync::CancellationToken;

const S: i64 = 1000;

/// The evaluator as `start` runs it, on the router's caches, until the
/// returned guard drops.
fn evaluator(ctx: &Ctx) -> tokio_util::sync::DropGuard {
    let stop = CancellationToken::new();
    dcmms_cloud::alarms::evaluate::spawn(ctx.db.clone(), ctx.caches.clone(), stop.clone());
    stop.drop_guard()
}

impl Ctx {
    async fn ok(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Value {
        let (s, b) = self.call(method.clone(), uri, Some(token), body).await;
        assert!(s.is_success(), "{method} {uri}: {s} {b}");
        b
    }

    /// Ingests one batch `seq` of `(point, [(ts, value)])` through the
    /// real endpoint.
    async fn ingest(&self, cred: &str, seq: u64, series: &[(&str, Vec<(i64, f64)>)]) {
        let status = self.ingest_with(cred, "gw-al", seq, series, vec![]).await;
        assert_eq!(status, "stored");
    }

    /// Ingests one batch of gateway `gw` with `events`; returns the ack's
    /// status (`stored` or `duplicate`).
    async fn ingest_with(
        &self,
        cred: &str,
        gw: &str,
        seq: u64,
        series: &[(&str, Vec<(i64, f64)>)],
        events: Vec<AnomalyEvent>,
    ) -> String {
        let last = series
            .iter()
            .flat_map(|(_, v)| v.iter().map(|x| x.0))
            .max()
            .unwrap_or(0);
        let batch = Batch {
            gateway_id: gw.into(),
            first_sequence: seq,
            sequence: seq,
            created_ms: last,
            polled_through_ms: last + 1,
            drops: vec![],
            events,
            series: series
                .iter()
                .map(|(point, v)| Series {
                    device: "inv-01".into(),
                    point: (*point).into(),
                    unit: "degC".into(),
                    samples: v
                        .iter()
                        .map(|(ts_ms, value)| Sample {
                            ts_ms: *ts_ms,
                            value: *value,
                            quality: Quality::Good,
                        })
                        .collect(),
                })
                .collect(),
        };
        let body = encode(&batch, Compression::Zstd { level: 3 }).unwrap();
        let req = Request::post("/api/v1/ingest")
            .header(header::CONTENT_TYPE, dcmms_shared::api::BATCH_CONTENT_TYPE)
            .header(header::AUTHORIZATION, format!("Bearer {cred}"))
            .body(Body::from(body))
            .unwrap();
        let (s, b) = self.send(req).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["status"].as_str().unwrap().to_string()
    }

    /// A solar site in Pavagada; returns its id.
    async fn solar_site(&self, token: &str, code: &str, name: &str) -> i64 {
        let body = json!({
            "code": code, "name": name, "kind": "solar",
            "ac_capacity_kw": 50000.0, "latitude": 14.1, "longitude": 77.3,
            "time_zone": "Asia/Kolkata", "grid_connection_point": "Pavagada 400 kV"
        });
        self.ok(Method::POST, "/api/v1/sites", token, Some(body))
            .await["id"]
            .as_i64()
            .unwrap()
    }

    async fn point_id(&self, name: &str) -> i64 {
        let (id,): (i64,) = on_db!(&self.db, p => sqlx::query_as("SELECT id FROM points WHERE point = $1")
            .bind(name).fetch_one(p).await.unwrap());
        id
    }

    /// Waits (deadline 20 s) until the evaluator has looked at every
    /// sample of `point` up to `ts` for `rule`.
    async fn evaluated(&self, rule: i64, point: i64, ts: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let w: Option<(i64,)> = on_db!(&self.db, p => sqlx::query_as(
                "SELECT MAX(watermark_ms) FROM alarm_eval_state WHERE rule_id = $1 AND point_id = $2")
                .bind(rule).bind(point).fetch_optional(p).await.unwrap_or(None));
            if w.is_some_and(|(w,)| w >= ts) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "evaluator did not reach {ts} for rule {rule}, point {point} (at {w:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn alarms(&self, token: &str, query: &str) -> Vec<Value> {
        let b = self
            .ok(Method::GET, &format!("/api/v1/alarms?{query}"), token, None)
            .await;
        b["items"].as_array().unwrap().clone()
    }
}

fn series(from: i64, n: i64, step: i64, value: f64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (from + i * step, value)).collect()
}

async fn scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (_, tech) = ctx.user("tech", Role::Technician).await;
    let (_, auditor) = ctx.user("auditor", Role::Auditor).await;
    let site = ctx.solar_site(&admin, "PVG-07", "Pavagada block 7").await;
    let inv = ctx
        .ok(
            Method::POST,
            "/api/v1/assets",
            &admin,
            Some(
                json!({"site_id": site, "name": "INV-07", "class": "inverter",
                "nameplate": {"rated_power_kw": 100.0}}),
            ),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let combiner = ctx
        .ok(
            Method::POST,
            "/api/v1/assets",
            &admin,
            Some(json!({"site_id": site, "name": "CB-07", "class": "combiner_box"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    // Telemetry registers the points; link them to the assets.
    let gw = gateways::create(&ctx.db, "gw-al", "Alarms").await.unwrap();
    let cred = gw.credential.clone();
    let t0 = gateways::now_ms() - 30 * 60 * S;
    ctx.ingest(
        &cred,
        1,
        &[
            ("cabinet_temperature", series(t0, 6, 10 * S, 40.0)),
            ("string_current", series(t0, 6, 10 * S, 5.0)),
        ],
    )
    .await;
    let temp = ctx.point_id("cabinet_temperature").await;
    let current = ctx.point_id("string_current").await;
    ctx.ok(
        Method::POST,
        &format!("/api/v1/assets/{inv}/points"),
        &admin,
        Some(json!({"point_id": temp, "role": "cabinet_temperature"})),
    )
    .await;
    ctx.ok(
        Method::POST,
        &format!("/api/v1/assets/{combiner}/points"),
        &admin,
        Some(json!({"point_id": current, "role": "string_current"})),
    )
    .await;

    // Rules: permissions, validation naming the field, then the real ones.
    let rule_body = json!({
        "name": "Inverter cabinet over-temperature",
        "scope": {"type": "asset_class", "class": "inverter", "role": "cabinet_temperature"},
        "condition": {"type": "threshold", "op": ">", "value": 70.0, "for_s": 60, "clear_value": 60.0},
        "severity": 1, "auto_work_order": true, "energy_weighted": true
    });
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/alarm-rules",
            Some(&tech),
            Some(rule_body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let mut bad = rule_body.clone();
    bad["condition"]["clear_value"] = json!(80.0);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/alarm-rules", Some(&admin), Some(bad))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["field"], "condition.clear_value", "{b}");
    let mut bad = rule_body.clone();
    bad["severity"] = json!(9);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/alarm-rules", Some(&admin), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("severity")),
        "{b}"
    );
    let rule = ctx
        .ok(Method::POST, "/api/v1/alarm-rules", &admin, Some(rule_body))
        .await;
    let rule_id = rule["id"].as_i64().unwrap();
    assert_eq!(rule["version"], 1);
    assert_eq!(rule["priority"], 1);
    // A stale version is 409 naming `version`.
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &format!("/api/v1/alarm-rules/{rule_id}"),
            Some(&admin),
            Some(json!({"version": 7, "name": "x"})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );

    // Below the threshold: no alarm.
    ctx.ingest(
        &cred,
        2,
        &[("cabinet_temperature", series(t0 + 60 * S, 6, 10 * S, 45.0))],
    )
    .await;
    ctx.evaluated(rule_id, temp, t0 + 110 * S).await;
    assert!(ctx.alarms(&admin, "").await.is_empty());

    // Above for 50 s (less than for_s = 60): still nothing.
    ctx.ingest(
        &cred,
        3,
        &[("cabinet_temperature", series(t0 + 120 * S, 6, 10 * S, 80.0))],
    )
    .await;
    ctx.evaluated(rule_id, temp, t0 + 170 * S).await;
    assert!(ctx.alarms(&admin, "").await.is_empty());

    // Held for 60 s (across batches): exactly one alarm, one work order.
    ctx.ingest(
        &cred,
        4,
        &[("cabinet_temperature", series(t0 + 180 * S, 7, 10 * S, 80.0))],
    )
    .await;
    ctx.evaluated(rule_id, temp, t0 + 240 * S).await;
    let list = ctx
        .alarms(&admin, &format!("state=active&asset_id={inv}"))
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    let alarm_id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["raised_ms"], t0 + 180 * S);
    assert_eq!(list[0]["trigger_value"], 80.0);
    assert_eq!(list[0]["severity"], 1);
    assert_eq!(list[0]["acknowledged"], false);
    assert_eq!(list[0]["site_id"], site);
    assert!(list[0]["evidence"].is_null());
    let wo_id = list[0]["work_order_id"].as_i64().unwrap();
    let wo = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders/{wo_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(wo["kind"], "corrective");
    assert_eq!(wo["status"], "REQUESTED");
    assert_eq!(wo["asset_id"], inv);
    assert_eq!(wo["site_id"], site);
    // 100 kW rated × 1000 W/m² (no irradiance point: default) = 100 kW lost → band 2.
    assert_eq!(wo["priority"], 2);
    let desc = wo["description"].as_str().unwrap();
    assert!(desc.contains(&format!("alarm {alarm_id}")), "{desc}");
    assert!(desc.contains("Inverter cabinet over-temperature"), "{desc}");
    // The evidence: rule, asset and the telemetry window up to the trigger.
    let full = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/alarms/{alarm_id}"),
            &admin,
            None,
        )
        .await;
    let ev = &full["evidence"];
    assert_eq!(ev["rule"]["id"], rule_id);
    assert_eq!(ev["rule"]["condition"]["value"], 70.0);
    assert_eq!(ev["asset"]["id"], inv);
    assert_eq!(ev["asset"]["nameplate"]["rated_power_kw"], 100.0);
    assert_eq!(ev["point"]["id"], temp);
    assert_eq!(ev["trigger"]["ts_ms"], t0 + 180 * S);
    let window = ev["window"]["samples"].as_array().unwrap();
    assert_eq!(window.len(), 19, "t0 .. t0+180 s every 10 s");
    assert_eq!(window[0]["ts_ms"], t0);
    assert_eq!(window[18]["value"], 80.0);
    assert_eq!(ev["energy_estimate"]["irradiance_source"], "default");
    assert_eq!(ev["energy_estimate"]["lost_kw"], 100.0);
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'system:alarms' AND action = 'raise'").fetch_one(p).await.unwrap());
    assert_eq!(n, 1);

    // More high values: still one alarm and one work order (dedup).
    ctx.ingest(
        &cred,
        5,
        &[("cabinet_temperature", series(t0 + 250 * S, 6, 10 * S, 85.0))],
    )
    .await;
    ctx.evaluated(rule_id, temp, t0 + 300 * S).await;
    let all = ctx.alarms(&admin, &format!("asset_id={inv}")).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["last_value"], 85.0);
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM work_orders WHERE kind = 'corrective' AND asset_id = $1").bind(inv).fetch_one(p).await.unwrap());
    assert_eq!(n, 1);
    // Running a pass by hand changes nothing either (idempotent).
    let r = ctx
        .ok(Method::POST, "/api/v1/alarms/evaluate", &admin, None)
        .await;
    assert_eq!(r["raised"], 0, "{r}");
    assert_eq!(ctx.alarms(&admin, "").await.len(), 1);

    // Acknowledge: the auditor may not; the technician may, once.
    let ack = format!("/api/v1/alarms/{alarm_id}/acknowledge");
    let (s, b) = ctx.call(Method::POST, &ack, Some(&auditor), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let a = ctx.ok(Method::POST, &ack, &tech, None).await;
    assert_eq!(a["acknowledged"], true);
    assert_eq!(a["state"], "active");
    let (s, b) = ctx.call(Method::POST, &ack, Some(&tech), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(
        ctx.alarms(&admin, "acknowledged=true&state=active")
            .await
            .len(),
        1
    );
    assert!(ctx.alarms(&admin, "acknowledged=false").await.is_empty());
    let (s, b) = ctx
        .call(Method::GET, "/api/v1/alarms?state=open", Some(&admin), None)
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("state")),
        "{b}"
    );

    // The work order is done through the lifecycle.
    for (i, action) in ["approve", "schedule", "start", "complete"]
        .iter()
        .enumerate()
    {
        ctx.ok(
            Method::POST,
            &format!("/api/v1/work-orders/{wo_id}/transitions"),
            &admin,
            Some(json!({"version": i + 1, "action": action})),
        )
        .await;
    }

    // Back in the hysteresis band (65: below 70, above 60): still active;
    // then below clear_value: cleared, and the repair is verified.
    let t1 = gateways::now_ms() + S;
    ctx.ingest(
        &cred,
        6,
        &[("cabinet_temperature", vec![(t1, 65.0), (t1 + 10 * S, 50.0)])],
    )
    .await;
    ctx.evaluated(rule_id, temp, t1 + 10 * S).await;
    let a = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/alarms/{alarm_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(a["state"], "cleared", "{a}");
    assert_eq!(a["cleared_ms"], t1 + 10 * S);
    assert_eq!(a["repair_verified"], true, "{a}");
    assert_eq!(a["acknowledged"], true);
    assert!(ctx.alarms(&admin, "state=active").await.is_empty());

    // A new excursion raises a new alarm with a new work order; clearing
    // while that work order is still open does not verify the repair.
    let t3 = t1 + 20 * S;
    let mut values = series(t3, 7, 10 * S, 90.0);
    values.push((t3 + 70 * S, 40.0));
    ctx.ingest(&cred, 7, &[("cabinet_temperature", values)])
        .await;
    ctx.evaluated(rule_id, temp, t3 + 70 * S).await;
    let all = ctx.alarms(&admin, &format!("asset_id={inv}")).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let second = &all[0];
    assert_ne!(second["id"], alarm_id);
    assert_eq!(second["raised_ms"], t3 + 60 * S);
    assert_eq!(second["state"], "cleared");
    assert_eq!(second["repair_verified"], false);
    assert!(
        second["note"].as_str().unwrap().contains("REQUESTED"),
        "{second}"
    );
    assert_ne!(second["work_order_id"], json!(wo_id));
    assert!(second["work_order_id"].is_i64());

    // Rate of change on the combiner's string current (no work order).
    let roc = ctx
        .ok(
            Method::POST,
            "/api/v1/alarm-rules",
            &admin,
            Some(json!({
                "name": "String current jump",
                "scope": {"type": "point", "point_id": current},
                "condition": {"type": "rate_of_change", "delta_per_min": 10.0, "window_s": 60},
                "severity": 3
            })),
        )
        .await;
    let roc_id = roc["id"].as_i64().unwrap();
    let t2 = gateways::now_ms() + S;
    ctx.ingest(&cred, 8, &[("string_current", series(t2, 6, 10 * S, 5.0))])
        .await;
    ctx.evaluated(roc_id, current, t2 + 50 * S).await;
    assert!(
        ctx.alarms(&admin, &format!("asset_id={combiner}"))
            .await
            .is_empty()
    );
    ctx.ingest(&cred, 9, &[("string_current", vec![(t2 + 60 * S, 30.0)])])
        .await;
    ctx.evaluated(roc_id, current, t2 + 60 * S).await;
    let list = ctx
        .alarms(&admin, &format!("asset_id={combiner}&state=active"))
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["rule_id"], roc_id);
    assert_eq!(list[0]["raised_ms"], t2 + 60 * S);
    assert!(list[0]["work_order_id"].is_null());

    // Deactivating the rule clears its alarm (not verified).
    let r = ctx
        .ok(
            Method::PATCH,
            &format!("/api/v1/alarm-rules/{roc_id}"),
            &admin,
            Some(json!({"version": 1, "active": false})),
        )
        .await;
    assert_eq!(
        (r["version"].as_i64(), r["active"].as_bool()),
        (Some(2), Some(false))
    );
    let list = ctx.alarms(&admin, &format!("asset_id={combiner}")).await;
    assert_eq!(list[0]["state"], "cleared");
    assert_eq!(list[0]["repair_verified"], false);

    // Concurrent evaluators (the background task and four passes by hand)
    // raise one alarm and open one work order.
    let race = ctx
        .ok(
            Method::POST,
            "/api/v1/alarm-rules",
            &admin,
            Some(json!({
                "name": "String current present",
                "scope": {"type": "asset_class", "class": "combiner_box", "role": "string_current"},
                "condition": {"type": "threshold", "op": ">", "value": 1.0},
                "auto_work_order": true, "active": false
            })),
        )
        .await;
    let race_id = race["id"].as_i64().unwrap();
    ctx.ok(
        Method::PATCH,
        &format!("/api/v1/alarm-rules/{race_id}"),
        &admin,
        Some(json!({"version": 1, "active": true})),
    )
    .await;
    let passes = (0..4).map(|_| dcmms_cloud::alarms::evaluate::evaluate(&ctx.db, &ctx.caches));
    for r in futures::future::join_all(passes).await {
        assert_eq!(r.unwrap().failed, 0);
    }
    ctx.evaluated(race_id, current, t2 + 60 * S).await;
    let list = ctx.alarms(&admin, &format!("rule_id={race_id}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM work_orders WHERE kind = 'corrective' AND asset_id = $1").bind(combiner).fetch_one(p).await.unwrap());
    assert_eq!(n, 1);

    audit::verify(&ctx.db).await.unwrap();
    let (_, doc) = ctx
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(doc["paths"]["/api/v1/alarms/{id}/acknowledge"].is_object());
    assert!(doc["components"]["schemas"]["Rule"].is_object());
}

/// An anomaly event of the wind-turbine model for asset `WTG-01`.
fn anomaly(kind: AnomalyKind, ts_ms: i64, score: f64) -> AnomalyEvent {
    let c = |feature: &str, share: f64, value: f64, expected: f64, text: &str| Contribution {
        feature: feature.into(),
        unit: "degC".into(),
        share,
        value,
        expected,
        text: text.into(),
    };
    let explanation = match kind {
        AnomalyKind::Raised => vec![
            c(
                "gearbox_rise",
                0.81,
                38.0,
                24.0,
                "gearbox temperature 14 °C above expected for this power",
            ),
            c(
                "generator_rise",
                0.12,
                30.0,
                28.5,
                "generator temperature 1.5 °C above expected for this power",
            ),
        ],
        AnomalyKind::Cleared => vec![],
    };
    AnomalyEvent {
        kind,
        asset: "WTG-01".into(),
        asset_class: "wind_turbine".into(),
        model_id: "wind-turbine-ae".into(),
        model_version: "1.0.0".into(),
        ts_ms,
        window_start_ms: ts_ms - 600 * S,
        score,
        raise_level: 4.0,
        summary: match kind {
            AnomalyKind::Raised => "gearbox temperature 14 °C above expected for this power".into(),
            AnomalyKind::Cleared => "back to normal".into(),
        },
        explanation,
    }
}

async fn anomaly_scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let site = ctx
        .ok(
            Method::POST,
            "/api/v1/sites",
            &admin,
            Some(json!({"code": "KTK-01", "name": "Kutch wind", "kind": "wind", "ac_capacity_kw": 30000.0,
                "latitude": 23.2, "longitude": 68.9, "time_zone": "Asia/Kolkata", "grid_connection_point": "Bhuj 220 kV"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let wtg = ctx
        .ok(
            Method::POST,
            "/api/v1/assets",
            &admin,
            Some(json!({"site_id": site, "name": "WTG-01", "class": "turbine"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let gw = gateways::create(&ctx.db, "gw-al", "Wind").await.unwrap();
    let other = gateways::create(&ctx.db, "gw-other", "Elsewhere")
        .await
        .unwrap();
    let t0 = gateways::now_ms() - 30 * 60 * S;
    let temps = series(t0, 60, 10 * S, 60.0);
    ctx.ingest(&gw.credential, 1, &[("gearbox_temperature", temps)])
        .await;
    let point = ctx.point_id("gearbox_temperature").await;
    ctx.ok(
        Method::POST,
        &format!("/api/v1/assets/{wtg}/points"),
        &admin,
        Some(json!({"point_id": point, "role": "gearbox_temperature"})),
    )
    .await;

    let rule = json!({
        "name": "Turbine anomaly (edge model)",
        "scope": {"type": "asset_class", "class": "turbine", "role": "gearbox_temperature"},
        "condition": {"type": "anomaly", "model_id": " "},
        "severity": 2, "auto_work_order": true
    });
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/alarm-rules",
            Some(&admin),
            Some(rule.clone()),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("condition.model_id")),
        "{b}"
    );
    let mut rule = rule;
    rule["condition"] = json!({"type": "anomaly", "model_id": "wind-turbine-ae"});
    let rule_id = ctx
        .ok(Method::POST, "/api/v1/alarm-rules", &admin, Some(rule))
        .await["id"]
        .as_i64()
        .unwrap();

    // The raise travels with samples; a replay of the batch stores nothing.
    let t1 = t0 + 600 * S;
    let raised = || vec![anomaly(AnomalyKind::Raised, t1, 9.5)];
    let batch2 = [("gearbox_temperature", series(t1 - 50 * S, 6, 10 * S, 75.0))];
    assert_eq!(
        ctx.ingest_with(&gw.credential, "gw-al", 2, &batch2, raised())
            .await,
        "stored"
    );
    assert_eq!(
        ctx.ingest_with(&gw.credential, "gw-al", 2, &batch2, raised())
            .await,
        "duplicate"
    );
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM anomaly_events WHERE gateway_id = 'gw-al'").fetch_one(p).await.unwrap());
    assert_eq!(n, 1);
    ctx.evaluated(rule_id, point, t1).await;

    let list = ctx.alarms(&admin, &format!("rule_id={rule_id}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let alarm = &list[0];
    assert_eq!(
        (alarm["state"].as_str(), alarm["asset_id"].as_i64()),
        (Some("active"), Some(wtg))
    );
    assert_eq!(alarm["raised_ms"].as_i64(), Some(t1));
    assert_eq!(alarm["trigger_value"].as_f64(), Some(9.5));
    let id = alarm["id"].as_i64().unwrap();
    let full = ctx
        .ok(Method::GET, &format!("/api/v1/alarms/{id}"), &admin, None)
        .await;
    let ev = &full["evidence"]["anomaly"];
    assert_eq!(ev["model_id"], "wind-turbine-ae", "{full}");
    assert_eq!(
        ev["explanation"][0]["text"],
        "gearbox temperature 14 °C above expected for this power"
    );
    assert_eq!(ev["explanation"][1]["feature"], "generator_rise");
    // The anchor point's telemetry around the event is the window.
    let window = full["evidence"]["window"]["samples"].as_array().unwrap();
    assert!(window.iter().any(|x| x["value"] == 75.0), "{window:?}");
    let wo = alarm["work_order_id"]
        .as_i64()
        .expect("a predictive work order");
    let wo = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders/{wo}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(wo["kind"], "predictive", "{wo}");
    assert!(
        wo["title"]
            .as_str()
            .unwrap()
            .starts_with("Predicted fault: gearbox temperature"),
        "{wo}"
    );
    let d = wo["description"].as_str().unwrap();
    assert!(
        d.contains(
            "- gearbox temperature 14 °C above expected for this power (81 % of the deviation)"
        ),
        "{d}"
    );

    // The model's clear event clears it.
    let t2 = t1 + 1800 * S;
    let batch3 = [("gearbox_temperature", series(t2 - 50 * S, 6, 10 * S, 61.0))];
    let cleared = vec![anomaly(AnomalyKind::Cleared, t2, 0.4)];
    assert_eq!(
        ctx.ingest_with(&gw.credential, "gw-al", 3, &batch3, cleared)
            .await,
        "stored"
    );
    ctx.evaluated(rule_id, point, t2).await;
    let list = ctx.alarms(&admin, &format!("rule_id={rule_id}")).await;
    assert_eq!(
        (list.len(), list[0]["state"].as_str()),
        (1, Some("cleared")),
        "{list:?}"
    );

    // Another gateway's WTG-01 is another turbine: stored, no alarm here.
    let t3 = t2 + 600 * S;
    let elsewhere = vec![anomaly(AnomalyKind::Raised, t3, 12.0)];
    assert_eq!(
        ctx.ingest_with(&other.credential, "gw-other", 1, &[], elsewhere)
            .await,
        "stored"
    );
    let r = dcmms_cloud::alarms::evaluate::evaluate(&ctx.db, &ctx.caches)
        .await
        .unwrap();
    assert_eq!(r.failed, 0);
    let list = ctx.alarms(&admin, &format!("rule_id={rule_id}")).await;
    assert_eq!(
        (list.len(), list[0]["state"].as_str()),
        (1, Some("cleared")),
        "{list:?}"
    );
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM anomaly_events").fetch_one(p).await.unwrap());
    assert_eq!(n, 3);
    audit::verify(&ctx.db).await.unwrap();
}

/// A bit-mask rule on SunSpec `Evt1` (bit 0: ground fault).
async fn bit_mask_scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let site = ctx.solar_site(&admin, "PVG-08", "Pavagada block 8").await;
    let inv = ctx
        .ok(
            Method::POST,
            "/api/v1/assets",
            &admin,
            Some(json!({"site_id": site, "name": "INV-08", "class": "inverter"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let gw = gateways::create(&ctx.db, "gw-al", "Bits").await.unwrap();
    let cred = gw.credential.clone();
    let t0 = gateways::now_ms() - 30 * 60 * S;
    // Bit 1 (DC over-voltage) alone: not this rule's bit.
    ctx.ingest(&cred, 1, &[("Evt1", series(t0, 3, 10 * S, 2.0))])
        .await;
    let evt = ctx.point_id("Evt1").await;
    ctx.ok(
        Method::POST,
        &format!("/api/v1/assets/{inv}/points"),
        &admin,
        Some(json!({"point_id": evt, "role": "events"})),
    )
    .await;

    let body = json!({
        "name": "Inverter ground fault",
        "scope": {"type": "asset_class", "class": "inverter", "role": "events"},
        "condition": {"type": "bit_mask", "mask": 1, "for_s": 0},
        "severity": 1, "auto_work_order": true
    });
    let mut bad = body.clone();
    bad["condition"]["mask"] = json!(0);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/alarm-rules", Some(&admin), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("condition.mask")),
        "{b}"
    );
    let mut bad = body.clone();
    bad["condition"]["mask"] = json!(-1);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/alarm-rules", Some(&admin), Some(bad))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let rule = ctx
        .ok(Method::POST, "/api/v1/alarm-rules", &admin, Some(body))
        .await;
    let rule_id = rule["id"].as_i64().unwrap();
    assert_eq!(rule["condition"]["type"], "bit_mask");

    let t1 = gateways::now_ms() + S;
    // 2 (bit 1 only), then a reading that is no register value, then 3.
    ctx.ingest(
        &cred,
        2,
        &[(
            "Evt1",
            vec![(t1, 2.0), (t1 + 10 * S, 2.5), (t1 + 20 * S, 3.0)],
        )],
    )
    .await;
    ctx.evaluated(rule_id, evt, t1 + 20 * S).await;
    let list = ctx.alarms(&admin, &format!("asset_id={inv}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["raised_ms"], t1 + 20 * S);
    assert_eq!(list[0]["trigger_value"], 3.0);
    let wo = list[0]["work_order_id"].as_i64().unwrap();
    let order = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders/{wo}"),
            &admin,
            None,
        )
        .await;
    assert!(
        order["description"]
            .as_str()
            .unwrap()
            .contains("bits 0x1 of mask 0x1 set"),
        "{order}"
    );

    // Bit 1 stays, bit 0 goes: cleared.
    ctx.ingest(&cred, 3, &[("Evt1", vec![(t1 + 30 * S, 2.0)])])
        .await;
    ctx.evaluated(rule_id, evt, t1 + 30 * S).await;
    let list = ctx.alarms(&admin, &format!("asset_id={inv}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "cleared");
    assert_eq!(list[0]["cleared_ms"], t1 + 30 * S);
}

/// A scenario as two tests: on SQLite always, on Postgres with
/// `--features postgres-tests`; each with the evaluator running.
macro_rules! on_both_databases {
    ($scenario:ident, $sqlite:ident, $postgres:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            let ctx = Ctx::new(&testing::sqlite_url(dir.path())).await;
            let _evaluator = evaluator(&ctx);
            $scenario(&ctx).await;
        }

        #[cfg(feature = "postgres-tests")]
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let url = testing::fresh_postgres_database().await.unwrap();
            let ctx = Ctx::new(&url).await;
            let _evaluator = evaluator(&ctx);
            $scenario(&ctx).await;
        }
    };
}

on_both_databases!(
    bit_mask_scenario,
    sqlite_bit_mask_alarms,
    postgres_bit_mask_alarms
);

on_both_databases!(
    anomaly_scenario,
    sqlite_anomaly_alarms,
    postgres_anomaly_alarms
);

on_both_databases!(scenario, sqlite_alarms_scenario, postgres_alarms_scenario);
