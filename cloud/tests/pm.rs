//! Preventive maintenance, one scenario run against SQLite always and
//! against Postgres with `--features postgres-tests`: a calendar plan
//! generates exactly its occurrences over the horizon, regeneration and
//! concurrent generation create nothing twice, the catch-up policy after
//! downtime, a meter plan at its threshold and not before, and compliance
//! over a constructed history (docs/specs/preventive-maintenance.md).
#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use dcmms_cloud::auth::Role;
use dcmms_cloud::pm::generate::{GenerateReport, generate};
use dcmms_cloud::{Db, audit, on_db, testing};
use serde_json::{Value, json};

mod support;
use support::Ctx;

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

impl Ctx {
    async fn generate(&self, now: i64) -> GenerateReport {
        let r = generate(&self.db, &self.caches, now).await.unwrap();
        assert!(r.failed_plans.is_empty(), "{r:?}");
        r
    }

    async fn occurrences(&self, token: &str, plan: i64) -> Vec<Value> {
        let (s, b) = self
            .call(
                Method::GET,
                &format!("/api/v1/pm/plans/{plan}/occurrences"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b["items"].as_array().unwrap().clone()
    }

    async fn site(&self, token: &str, code: &str) -> i64 {
        let (s, b) = self
            .call(
                Method::POST,
                "/api/v1/sites",
                Some(token),
                Some(json!({
                    "code": code, "name": "Pavagada block 2", "kind": "solar",
                    "ac_capacity_kw": 50000.0, "latitude": 14.1, "longitude": 77.3,
                    "time_zone": "Asia/Kolkata", "grid_connection_point": "Pavagada 400 kV"
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b["id"].as_i64().unwrap()
    }

    /// Moves work order `id` through `actions` (starting from version 1).
    async fn walk(&self, token: &str, id: i64, actions: &[&str]) {
        for (i, a) in actions.iter().enumerate() {
            let (s, b) = self
                .call(
                    Method::POST,
                    &format!("/api/v1/work-orders/{id}/transitions"),
                    Some(token),
                    Some(json!({"version": i + 1, "action": a})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{a}: {b}");
        }
    }

    /// Completes work order `id` and sets its completion time to `at`.
    async fn complete_at(&self, token: &str, id: i64, at: i64) {
        self.walk(token, id, &["approve", "schedule", "start", "complete"])
            .await;
        let n = on_db!(&self.db, p => sqlx::query(
            "UPDATE work_order_history SET at_ms = $1 WHERE work_order_id = $2 AND to_status = 'COMPLETED'")
            .bind(at).bind(id).execute(p).await.unwrap().rows_affected());
        assert_eq!(n, 1);
    }

    async fn compliance(&self, token: &str, query: &str) -> Value {
        let (s, b) = self
            .call(
                Method::GET,
                &format!("/api/v1/pm/compliance?{query}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }
}

async fn scenario(ctx: &Ctx) {
    let (admin_id, admin) = ctx.user("admin", Role::Admin).await;
    let (_, sup) = ctx.user("sup", Role::Supervisor).await;
    let (_, tech) = ctx.user("tech", Role::Technician).await;
    let site = ctx.site(&admin, "PVG-02").await;
    let site2 = ctx.site(&admin, "PVG-03").await;
    let (s, inv) = ctx
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(&admin),
            Some(json!({"site_id": site, "name": "INV-03", "class": "inverter"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let inv = inv["id"].as_i64().unwrap();

    let t0 = dcmms_cloud::gateways::now_ms();
    let anchor = t0 + DAY;
    let weekly = json!({
        "site_id": site, "asset_id": inv, "title": "Inverter PM: filters, torque check, IR scan",
        "description": "Clean air filters; re-torque DC terminals; thermal scan.",
        "schedule": {"type": "calendar", "every": 7, "unit": "day", "anchor_ms": anchor},
        "horizon_days": 30, "grace_days": 2
    });

    // Permissions and validation naming the field.
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/pm/plans",
            Some(&tech),
            Some(weekly.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let mut bad = weekly.clone();
    bad["schedule"]["every"] = json!(0);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/plans", Some(&sup), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("schedule.every")),
        "{b}"
    );
    let mut bad = weekly.clone();
    bad["schedule"] = json!({"type": "rrule", "rrule": "FREQ=YEARLY", "anchor_ms": anchor});
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/plans", Some(&sup), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("schedule.rrule")),
        "{b}"
    );
    let mut bad = weekly.clone();
    bad["schedule"] = json!({"type": "calendar", "every": 7, "unit": "day", "anchor_ms": anchor, "time_zone": "Asia/Calcutta-ish"});
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/plans", Some(&sup), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("schedule.time_zone")),
        "{b}"
    );
    let mut bad = weekly.clone();
    bad["site_id"] = json!(site2);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/plans", Some(&sup), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("asset_id")),
        "{b}"
    );
    let (s, plan) = ctx
        .call(Method::POST, "/api/v1/pm/plans", Some(&admin), Some(weekly))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    let plan_id = plan["id"].as_i64().unwrap();
    assert_eq!(plan["version"], 1);
    let (s, b) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/pm/plans/{plan_id}"),
            Some(&tech),
            None,
        )
        .await;
    assert_eq!((s, &b), (StatusCode::OK, &plan));

    // Generation over the 30-day horizon: occurrences at +1, +8, +15, +22, +29 days.
    let r = ctx.generate(t0).await;
    assert_eq!((r.generated, r.missed), (5, 0), "{r:?}");
    let occ = ctx.occurrences(&tech, plan_id).await;
    let due: Vec<i64> = occ.iter().map(|o| o["due_ms"].as_i64().unwrap()).collect();
    assert_eq!(
        due,
        (0..5).map(|k| anchor + k * 7 * DAY).collect::<Vec<_>>()
    );
    let mut wo_ids = Vec::new();
    for (o, d) in occ.iter().zip(&due) {
        assert_eq!(o["status"], "generated");
        let id = o["work_order_id"].as_i64().unwrap();
        let (_, wo) = ctx
            .call(
                Method::GET,
                &format!("/api/v1/work-orders/{id}"),
                Some(&tech),
                None,
            )
            .await;
        assert_eq!(wo["kind"], "preventive");
        assert_eq!(wo["status"], "REQUESTED");
        assert_eq!(wo["due_ms"].as_i64(), Some(*d));
        assert_eq!(wo["asset_id"].as_i64(), Some(inv));
        assert_eq!(wo["created_by"].as_i64(), Some(admin_id));
        wo_ids.push(id);
    }
    // Regenerating creates nothing new.
    assert_eq!(ctx.generate(t0).await.generated, 0);
    assert_eq!(ctx.generate(t0 + HOUR).await.generated, 0);

    // Concurrent generators: a second plan (daily, on another site) and the
    // next weekly occurrence (+36 d, inside the horizon at +8 d).
    let (s, daily) = ctx
        .call(
            Method::POST,
            "/api/v1/pm/plans",
            Some(&admin),
            Some(json!({"site_id": site2, "title": "Daily walk-down", "kind": "inspection",
                "schedule": {"type": "rrule", "rrule": "FREQ=DAILY", "anchor_ms": anchor}, "horizon_days": 10})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{daily}");
    let daily_id = daily["id"].as_i64().unwrap();
    let (a, b) = tokio::join!(
        generate(&ctx.db, &ctx.caches, t0),
        generate(&ctx.db, &ctx.caches, t0)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Daily: +1 … +10 d.
    assert_eq!(a.generated + b.generated, 10, "{a:?} {b:?}");
    let (a, b) = tokio::join!(
        generate(&ctx.db, &ctx.caches, t0 + 8 * DAY),
        generate(&ctx.db, &ctx.caches, t0 + 8 * DAY)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Daily: +11 … +18 d (horizon to +18 d); weekly: +36 d.
    assert_eq!(a.generated + b.generated, 8 + 1, "{a:?} {b:?}");
    assert_eq!(a.missed + b.missed, 0, "{a:?} {b:?}");
    assert_eq!(ctx.occurrences(&tech, daily_id).await.len(), 18);
    assert_eq!(ctx.occurrences(&tech, plan_id).await.len(), 6);
    // The daily plan is switched off (a stale version is refused first).
    let uri = format!("/api/v1/pm/plans/{daily_id}");
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&admin),
            Some(json!({"version": 7, "active": false})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&admin),
            Some(json!({"version": 1, "active": false})),
        )
        .await;
    assert_eq!((s, b["version"].as_i64()), (StatusCode::OK, Some(2)), "{b}");

    // Downtime: the next pass runs at +60 d. Past their grace (2 d): +43 and
    // +50 are missed, +57 is the one owed (generated, late); +64 … +85 lie
    // in the horizon (to +90 d).
    let r = ctx.generate(t0 + 60 * DAY).await;
    assert_eq!((r.generated, r.missed), (5, 2), "{r:?}");
    let occ = ctx.occurrences(&tech, plan_id).await;
    let got: Vec<(i64, &str, bool)> = occ
        .iter()
        .map(|o| {
            (
                (o["due_ms"].as_i64().unwrap() - anchor) / DAY,
                o["status"].as_str().unwrap(),
                o["work_order_id"].is_i64(),
            )
        })
        .collect();
    let mut want = vec![];
    for k in 0..13 {
        let d = k * 7;
        let missed = d == 42 || d == 49;
        want.push((d, if missed { "missed" } else { "generated" }, !missed));
    }
    assert_eq!(got, want);
    assert_eq!(
        ctx.generate(t0 + 60 * DAY).await,
        GenerateReport {
            plans: 1,
            ..GenerateReport::default()
        }
    );

    // Meter plan: every 500 running hours of the inverter.
    on_db!(&ctx.db, p => sqlx::query("INSERT INTO gateways (id, name, secret_sha256, created_ms) VALUES ('gw-pm', 'gw', 'x', 0)")
        .execute(p).await.unwrap().rows_affected());
    let (point,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "INSERT INTO points (gateway_id, device, point, unit) VALUES ('gw-pm', 'inv3', 'run_hours', 'h') RETURNING id")
        .fetch_one(p).await.unwrap());
    let (s, b) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/assets/{inv}/points"),
            Some(&admin),
            Some(json!({"point_id": point, "role": "running_hours"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, meter) = ctx
        .call(
            Method::POST,
            "/api/v1/pm/plans",
            Some(&admin),
            Some(
                json!({"site_id": site, "asset_id": inv, "title": "Fan replacement",
                "schedule": {"type": "meter", "role": "running_hours", "every": 500.0}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{meter}");
    assert_eq!(meter["grace_days"], 7);
    let meter_id = meter["id"].as_i64().unwrap();
    let sample = |ts: i64, v: f64| {
        let db = ctx.db.clone();
        let caches = ctx.caches.clone();
        async move {
            if let Db::Postgres(pool) = &db {
                dcmms_cloud::partitions::ensure(
                    pool,
                    &caches,
                    [dcmms_cloud::partitions::day_of(ts)],
                )
                .await
                .unwrap();
            }
            on_db!(&db, p => sqlx::query("INSERT INTO samples (point_id, ts_ms, value, quality) VALUES ($1, $2, $3, 0)")
                .bind(point).bind(ts).bind(v).execute(p).await.unwrap().rows_affected());
        }
    };
    assert_eq!(ctx.generate(t0).await.generated, 0, "no reading yet");
    sample(t0 - 3 * HOUR, 499.5).await;
    assert_eq!(ctx.generate(t0).await.generated, 0, "below the threshold");
    sample(t0 - 2 * HOUR, 500.25).await;
    sample(t0 + HOUR, 9999.0).await; // after `now`: not read
    assert_eq!(ctx.generate(t0).await.generated, 1, "at the threshold");
    assert_eq!(ctx.generate(t0).await.generated, 0, "once");
    sample(t0 - HOUR, 1000.0).await;
    assert_eq!(
        ctx.generate(t0).await.generated,
        0,
        "500.25 + 500 not reached"
    );
    sample(t0 - HOUR / 2, 1000.25).await;
    assert_eq!(ctx.generate(t0).await.generated, 1);
    let occ = ctx.occurrences(&tech, meter_id).await;
    let got: Vec<(i64, f64, i64)> = occ
        .iter()
        .map(|o| {
            (
                o["occurrence_key"].as_i64().unwrap(),
                o["meter_value"].as_f64().unwrap(),
                o["due_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, 500.25, t0 - 2 * HOUR), (2, 1000.25, t0 - HOUR / 2)]
    );

    // The inverter's meters: running hours read from its counter point.
    let (s, m) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/assets/{inv}/meters"),
            Some(&tech),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(
        (
            m[0]["name"].as_str(),
            m[0]["value"].as_f64(),
            m[0]["source"].as_str(),
            m[0]["at_ms"].as_i64()
        ),
        (
            Some("running_hours"),
            Some(1000.25),
            Some("reading"),
            Some(t0 - HOUR / 2)
        ),
        "{m}"
    );

    // Derived meters: an inverter with only an AC power point (W). Eight
    // 15-minute buckets: 4 running throughout (min > 0), 2 with a start or
    // stop (min 0, max > 0), 2 at night; one bucket still in the deltas.
    let (_, inv4) = ctx
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(&admin),
            Some(json!({"site_id": site, "name": "INV-04", "class": "inverter"})),
        )
        .await;
    let inv4 = inv4["id"].as_i64().unwrap();
    let (power,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "INSERT INTO points (gateway_id, device, point, unit) VALUES ('gw-pm', 'inv4', 'W', 'W') RETURNING id")
        .fetch_one(p).await.unwrap());
    let (s, b) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/assets/{inv4}/points"),
            Some(&admin),
            Some(json!({"point_id": power, "role": "ac_power"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    const B: i64 = 900_000;
    let base = (t0 - DAY).div_euclid(B) * B;
    // (bucket, count, sum, min, max): mean power 80 kW when running.
    let buckets = [
        (0i64, 15i64, 0.0f64, 0.0f64, 0.0f64),
        (1, 15, 600_000.0, 0.0, 60_000.0),
        (2, 15, 1_200_000.0, 70_000.0, 90_000.0),
        (3, 15, 1_200_000.0, 70_000.0, 90_000.0),
        (4, 15, 1_200_000.0, 70_000.0, 90_000.0),
        (5, 15, 1_200_000.0, 70_000.0, 90_000.0),
        (6, 15, 300_000.0, 0.0, 40_000.0),
        (7, 15, -150.0, -10.0, 0.0),
    ];
    for (k, count, sum, min, max) in buckets {
        let table = if k == 5 {
            "rollup_deltas"
        } else {
            "rollups_15m"
        };
        let sql = format!(
            "INSERT INTO {table} (point_id, bucket_ms, samples, count, sum, min, max) VALUES ($1, $2, $3, $3, $4, $5, $6)"
        );
        on_db!(&ctx.db, p => sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(power).bind(base + k * B).bind(count).bind(sum).bind(min).bind(max)
            .execute(p).await.unwrap().rows_affected());
    }
    let (s, m) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/assets/{inv4}/meters"),
            Some(&tech),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let meter = |name: &str| {
        m.as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} meter in {m}"))
    };
    let hours = meter("running_hours");
    assert_eq!(hours["source"], "derived", "{m}");
    assert_eq!(
        hours["value"].as_f64(),
        Some(4.0 * 0.25 + 2.0 * 0.125),
        "{m}"
    );
    assert_eq!(hours["at_ms"].as_i64(), Some(base + 8 * B), "{m}");
    // Energy: (40 + 4 × 80 + 20) kW × 0.25 h = 0.095 MWh; night import not counted.
    let mwh = meter("energy_mwh")["value"].as_f64().unwrap();
    assert!((mwh - 0.095).abs() < 1e-9, "{m}");
    let (s, _) = ctx
        .call(
            Method::GET,
            "/api/v1/assets/999999/meters",
            Some(&tech),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // A meter plan on derived running hours: due once 1 h is reached.
    let (s, plan4) = ctx
        .call(
            Method::POST,
            "/api/v1/pm/plans",
            Some(&admin),
            Some(
                json!({"site_id": site, "asset_id": inv4, "title": "Inverter fan check",
                "schedule": {"type": "meter", "role": "running_hours", "every": 1.0}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plan4}");
    assert_eq!(ctx.generate(t0).await.generated, 1);
    let occ = ctx.occurrences(&tech, plan4["id"].as_i64().unwrap()).await;
    assert_eq!(occ.len(), 1, "{occ:?}");
    assert_eq!(occ[0]["meter_value"].as_f64(), Some(1.25));
    assert_eq!(occ[0]["due_ms"].as_i64(), Some(base + 8 * B));

    // Compliance over [t0, t0 + 60 d) on the first site: the 9 weekly
    // occurrences at +1 … +57 d (the meter ones are due before t0).
    let ids: Vec<Option<i64>> = ctx
        .occurrences(&tech, plan_id)
        .await
        .iter()
        .map(|o| o["work_order_id"].as_i64())
        .collect();
    let wo = |k: usize| ids[k].unwrap();
    let due_of = |k: i64| anchor + k * 7 * DAY;
    assert_eq!(wo(0), wo_ids[0]);
    ctx.complete_at(&admin, wo(0), due_of(0) + HOUR).await; // on time
    ctx.complete_at(&admin, wo(1), due_of(1) + 2 * DAY + 1)
        .await; // late by 1 ms
    ctx.complete_at(&admin, wo(2), due_of(2) + 2 * DAY).await; // on time: grace is inclusive
    ctx.walk(&sup, wo(3), &["cancel"]).await; // cancelled: missed
    // wo(4), wo(5): open; 6 and 7 missed by catch-up; 8 completed late.
    ctx.complete_at(&admin, wo(8), due_of(8) + 3 * DAY).await;
    let c = ctx
        .compliance(
            &tech,
            &format!("site_id={site}&from={t0}&to={}", t0 + 60 * DAY),
        )
        .await;
    assert_eq!(
        (
            c["due"].as_i64(),
            c["completed_on_time"].as_i64(),
            c["late"].as_i64(),
            c["missed"].as_i64(),
            c["open"].as_i64()
        ),
        (Some(9), Some(2), Some(2), Some(3), Some(2)),
        "{c}"
    );
    assert!(
        (c["compliance"].as_f64().unwrap() - 2.0 / 9.0).abs() < 1e-12,
        "{c}"
    );
    // A closed order still counts by its completion time.
    let (s, b) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{}/transitions", wo(0)),
            Some(&admin),
            Some(json!({"version": 5, "action": "close"})),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("CLOSED")),
        "{b}"
    );
    let c2 = ctx
        .compliance(
            &tech,
            &format!("site_id={site}&from={t0}&to={}", t0 + 60 * DAY),
        )
        .await;
    assert_eq!(c2["completed_on_time"], 2, "{c2}");
    // Nothing due: compliance is null. The other site: 18 open daily ones.
    let c = ctx.compliance(&tech, "from=0&to=1000").await;
    assert_eq!(
        (c["due"].as_i64(), c["compliance"].is_null()),
        (Some(0), true),
        "{c}"
    );
    let c = ctx
        .compliance(
            &tech,
            &format!("site_id={site2}&from=0&to={}", t0 + 365 * DAY),
        )
        .await;
    assert_eq!(
        (
            c["due"].as_i64(),
            c["open"].as_i64(),
            c["compliance"].as_f64()
        ),
        (Some(18), Some(18), Some(0.0)),
        "{c}"
    );
    let (s, b) = ctx
        .call(
            Method::GET,
            "/api/v1/pm/compliance?from=5&to=5",
            Some(&tech),
            None,
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("to")),
        "{b}"
    );
    let (s, b) = ctx
        .call(Method::GET, "/api/v1/pm/compliance?to=5", Some(&tech), None)
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("from")),
        "{b}"
    );

    // A schedule change restarts the plan now: the new schedule's
    // occurrences are generated even before the old schedule's last one.
    let now = dcmms_cloud::gateways::now_ms();
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &format!("/api/v1/pm/plans/{daily_id}"),
            Some(&admin),
            Some(json!({"version": 2, "active": true, "horizon_days": 40,
                "schedule": {"type": "calendar", "every": 1, "unit": "month", "anchor_ms": now + 2 * DAY}})),
        )
        .await;
    assert_eq!((s, b["version"].as_i64()), (StatusCode::OK, Some(3)), "{b}");
    assert!(b["from_ms"].as_i64().unwrap() >= now, "{b}");
    let r = ctx.generate(now).await;
    assert_eq!((r.generated, r.missed), (2, 0), "{r:?}");
    assert_eq!(ctx.occurrences(&tech, daily_id).await.len(), 20);

    // Generation through the API; the audit log shows system:pm and stays intact.
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/generate", Some(&tech), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/pm/generate", Some(&sup), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (n,): (i64,) = on_db!(&ctx.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM audit_log WHERE actor = 'system:pm' AND action = 'pm_missed'").fetch_one(p).await.unwrap());
    assert_eq!(n, 2);
    audit::verify(&ctx.db).await.unwrap();
    // The OpenAPI document lists the PM paths.
    let (_, doc) = ctx
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert!(doc["paths"]["/api/v1/pm/compliance"].is_object());
}

#[tokio::test]
async fn sqlite_pm_scenario() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_pm_scenario() {
    let url = testing::fresh_postgres_database().await.unwrap();
    scenario(&Ctx::new(&url).await).await;
}
