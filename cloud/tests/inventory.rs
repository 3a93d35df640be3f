//! Parts, inventory and costs through the HTTP API, run against SQLite
//! always and against Postgres with `--features postgres-tests`: a
//! technician completes a work order with parts and labour and the cost
//! rollup is exact to the paisa; CLOSED locks costs; CANCEL releases
//! reservations; the reorder notification is raised once per crossing; and
//! 20 concurrent reservations against a stock of 7 give exactly 7 wins.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use dcmms_cloud::auth::{Role, users};
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use dcmms_cloud::{Db, audit, on_db, testing};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct Ctx {
    db: Db,
    caches: Arc<dcmms_cloud::db::Caches>,
    router: axum::Router,
}

async fn call(
    router: &axum::Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Ctx {
    async fn new(url: &str) -> Ctx {
        let db = Db::connect(url).await.unwrap();
        let state = AppState::new(db.clone(), Arc::new(CloudMetrics::default()));
        Ctx {
            caches: state.caches.clone(),
            router: app(state, 1 << 20),
            db,
        }
    }

    async fn call(
        &self,
        m: Method,
        uri: &str,
        t: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        call(&self.router, m, uri, Some(t), body).await
    }

    /// Calls and asserts the status; returns the body.
    async fn ok(
        &self,
        want: StatusCode,
        m: Method,
        uri: &str,
        t: &str,
        body: Option<Value>,
    ) -> Value {
        let (s, b) = self.call(m.clone(), uri, t, body).await;
        assert_eq!(s, want, "{m} {uri}: {b}");
        b
    }

    async fn user(&self, name: &str, role: Role) -> (i64, String) {
        let u = users::create(
            &self.db,
            &self.caches,
            "system:test",
            name,
            name,
            role,
            PASSWORD,
        )
        .await
        .unwrap();
        let (s, body) = call(
            &self.router,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        (u.id, body["token"].as_str().unwrap().to_string())
    }

    async fn site(&self, admin: &str, code: &str) -> i64 {
        let b = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/sites",
                admin,
                Some(json!({
                    "code": code, "name": "Pavagada Solar Park, block 2", "kind": "solar",
                    "ac_capacity_kw": 50000.0, "latitude": 14.1, "longitude": 77.28,
                    "time_zone": "Asia/Kolkata", "grid_connection_point": "Pavagada 400 kV"
                })),
            )
            .await;
        b["id"].as_i64().unwrap()
    }

    /// A work order assigned to `assignee`, moved by `sup` to APPROVED
    /// and, if `start`, scheduled and started by `tech`. Returns (id, version).
    async fn work_order(
        &self,
        site: i64,
        sup: &str,
        assignee: i64,
        tech: &str,
        start: bool,
    ) -> (i64, i64) {
        let wo = self
            .ok(
                StatusCode::CREATED,
                Method::POST,
                "/api/v1/work-orders",
                sup,
                Some(json!({"site_id": site, "kind": "corrective", "title": "Replace inverter cooling fan", "assignee_id": assignee})),
            )
            .await;
        let id = wo["id"].as_i64().unwrap();
        let mut v = self.act(id, 1, "approve", sup).await;
        if start {
            v = self.act(id, v, "schedule", sup).await;
            v = self.act(id, v, "start", tech).await;
        }
        (id, v)
    }

    /// A lifecycle action; returns the new version.
    async fn act(&self, id: i64, version: i64, action: &str, who: &str) -> i64 {
        let b = self
            .ok(
                StatusCode::OK,
                Method::POST,
                &format!("/api/v1/work-orders/{id}/transitions"),
                who,
                Some(json!({"version": version, "action": action})),
            )
            .await;
        b["version"].as_i64().unwrap()
    }

    async fn stock(&self, t: &str, store: i64, part: i64) -> Value {
        self.ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/stores/{store}/stock/{part}"),
            t,
            None,
        )
        .await
    }

    async fn reserve(
        &self,
        t: &str,
        wo: i64,
        store: i64,
        part: i64,
        qty: i64,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/api/v1/work-orders/{wo}/reservations"),
            t,
            Some(json!({"store_id": store, "part_id": part, "quantity": qty})),
        )
        .await
    }

    async fn notifications(&self, t: &str, part: i64) -> Vec<Value> {
        let b = self
            .ok(
                StatusCode::OK,
                Method::GET,
                &format!("/api/v1/notifications?kind=reorder&part_id={part}"),
                t,
                None,
            )
            .await;
        b["items"].as_array().unwrap().clone()
    }
}

fn field(b: &Value) -> Option<&str> {
    b["field"].as_str()
}

async fn scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (_, sup) = ctx.user("sup", Role::Supervisor).await;
    let (tech_id, tech) = ctx.user("tech", Role::Technician).await;
    let (tech2_id, tech2) = ctx.user("tech2", Role::Technician).await;
    let (_, auditor) = ctx.user("auditor", Role::Auditor).await;
    let site = ctx.site(&admin, "PVG-02").await;

    // Catalogue and store: supervisors manage inventory, technicians do not.
    let (s, _) = ctx
        .call(
            Method::POST,
            "/api/v1/stores",
            &tech,
            Some(json!({"site_id": site, "name": "X"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let store = ctx
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/stores",
            &sup,
            Some(json!({"site_id": site, "name": "Block 2 container"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let fan = ctx
        .ok(StatusCode::CREATED, Method::POST, "/api/v1/parts", &sup,
            Some(json!({"part_number": "SMA-FAN-100", "name": "Inverter cooling fan", "unit": "each", "unit_cost_paise": 125_050})))
        .await["id"]
        .as_i64()
        .unwrap();
    let fuse = ctx
        .ok(StatusCode::CREATED, Method::POST, "/api/v1/parts", &sup,
            Some(json!({"part_number": "FUSE-15A", "name": "PV string fuse 15 A", "unit": "each", "unit_cost_paise": 4_999})))
        .await["id"]
        .as_i64()
        .unwrap();
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/parts", &sup,
            Some(json!({"part_number": "SMA-FAN-100", "name": "dup", "unit": "each", "unit_cost_paise": 1})))
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::CONFLICT, Some("part_number")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/parts",
            &sup,
            Some(json!({"part_number": "NEG", "name": "n", "unit": "each", "unit_cost_paise": -1})),
        )
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("unit_cost_paise")),
        "{b}"
    );
    let receipts = format!("/api/v1/stores/{store}/receipts");
    ctx.ok(
        StatusCode::OK,
        Method::POST,
        &receipts,
        &sup,
        Some(json!({"part_id": fan, "quantity": 7, "reference": "GRN-1"})),
    )
    .await;
    let st = ctx
        .ok(
            StatusCode::OK,
            Method::POST,
            &receipts,
            &sup,
            Some(json!({"part_id": fuse, "quantity": 10})),
        )
        .await;
    assert_eq!(
        (st["on_hand"].as_i64(), st["available"].as_i64()),
        (Some(10), Some(10))
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            &receipts,
            &sup,
            Some(json!({"part_id": fan, "quantity": 0})),
        )
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("quantity")),
        "{b}"
    );
    // Reorder point 4 on the fan (versioned; a stale version is 409).
    let fan_stock = format!("/api/v1/stores/{store}/stock/{fan}");
    let v = ctx.stock(&auditor, store, fan).await["version"]
        .as_i64()
        .unwrap();
    let st = ctx
        .ok(
            StatusCode::OK,
            Method::PATCH,
            &fan_stock,
            &sup,
            Some(json!({"version": v, "reorder_point": 4, "reorder_qty": 10})),
        )
        .await;
    assert_eq!(st["reorder_point"].as_i64(), Some(4));
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &fan_stock,
            &sup,
            Some(json!({"version": v, "reorder_point": 5})),
        )
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );

    // A work order with parts and labour, executed by its technician.
    let (wo, mut ver) = ctx.work_order(site, &sup, tech_id, &tech, true).await;
    let (s, r) = ctx.reserve(&tech, wo, store, fan, 2).await;
    assert_eq!(
        (s, r["state"].as_str()),
        (StatusCode::CREATED, Some("reserved")),
        "{r}"
    );
    let (s, b) = ctx.reserve(&tech2, wo, store, fan, 1).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not assigned to tech2: {b}");
    let (s, b) = ctx.reserve(&tech, wo, store, fan, 6).await;
    assert_eq!(
        (s, b["type"].as_str(), field(&b)),
        (
            StatusCode::CONFLICT,
            Some("/problems/insufficient-stock"),
            Some("quantity")
        ),
        "only 5 available: {b}"
    );
    let (s, b) = ctx.reserve(&tech, wo, store, 999_999, 1).await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("part_id")),
        "{b}"
    );
    let st = ctx.stock(&tech, store, fan).await;
    assert_eq!(
        (
            st["on_hand"].as_i64(),
            st["reserved"].as_i64(),
            st["available"].as_i64()
        ),
        (Some(7), Some(2), Some(5))
    );
    // Reserve fuses, then release them by hand.
    let (s, fr) = ctx.reserve(&tech, wo, store, fuse, 3).await;
    assert_eq!(s, StatusCode::CREATED, "{fr}");
    let rel = format!("/api/v1/reservations/{}/release", fr["id"]);
    let b = ctx
        .ok(StatusCode::OK, Method::POST, &rel, &tech, None)
        .await;
    assert_eq!(b["state"], "released");
    let (s, b) = ctx.call(Method::POST, &rel, &tech, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "released twice: {b}");
    assert_eq!(
        ctx.stock(&tech, store, fuse).await["reserved"].as_i64(),
        Some(0)
    );

    // Labour: 90 min at the technician's rate card, ₹500.00/h = ₹750.00;
    // 45 min (from start/end) at a rate a supervisor names, ₹600.01/h =
    // 45 × 60001 / 60 = 45000.75 → 45001 paise.
    let te = format!("/api/v1/work-orders/{wo}/time-entries");
    let (s, b) = ctx
        .call(Method::POST, &te, &tech, Some(json!({"minutes": 90})))
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("hourly_rate_paise")),
        "no rate on the card yet: {b}"
    );
    // The rate card: admins only, with the version read.
    let card = format!("/api/v1/users/{tech_id}");
    let (s, _) = ctx
        .call(
            Method::PATCH,
            &card,
            &sup,
            Some(json!({"version": 1, "hourly_rate_paise": 50_000})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &card,
            &admin,
            Some(json!({"version": 1, "hourly_rate_paise": -1})),
        )
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("hourly_rate_paise")),
        "{b}"
    );
    let u = ctx
        .ok(
            StatusCode::OK,
            Method::PATCH,
            &card,
            &admin,
            Some(json!({"version": 1, "hourly_rate_paise": 50_000})),
        )
        .await;
    assert_eq!(
        (u["hourly_rate_paise"].as_i64(), u["version"].as_i64()),
        (Some(50_000), Some(2))
    );
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &card,
            &admin,
            Some(json!({"version": 1, "hourly_rate_paise": 1})),
        )
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );
    // A technician cannot name their own rate.
    let (s, b) = ctx
        .call(
            Method::POST,
            &te,
            &tech,
            Some(json!({"minutes": 90, "hourly_rate_paise": 99_000})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let e1 = ctx
        .ok(
            StatusCode::CREATED,
            Method::POST,
            &te,
            &tech,
            Some(json!({"minutes": 90, "note": "swap fan"})),
        )
        .await;
    assert_eq!(e1["hourly_rate_paise"].as_i64(), Some(50_000));
    assert_eq!(
        (e1["user_id"].as_i64(), e1["cost_paise"].as_i64()),
        (Some(tech_id), Some(75_000))
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            &te,
            &tech,
            Some(json!({"user_id": tech2_id, "minutes": 10})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a technician logs only their own time: {b}"
    );
    let (s, b) = ctx
        .call(Method::POST, &te, &tech2, Some(json!({"minutes": 10})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not assigned: {b}");
    let (s, b) = ctx
        .call(Method::POST, &te, &tech, Some(json!({"minutes": 0})))
        .await;
    assert_eq!(
        (s, field(&b)),
        (StatusCode::BAD_REQUEST, Some("minutes")),
        "{b}"
    );
    let start = 1_764_900_000_000_i64;
    let e2 = ctx.ok(StatusCode::CREATED, Method::POST, &te, &sup,
        Some(json!({"user_id": tech_id, "start_ms": start, "end_ms": start + 45 * 60_000, "hourly_rate_paise": 60_001}))).await;
    assert_eq!(
        (e2["minutes"].as_i64(), e2["cost_paise"].as_i64()),
        (Some(45), Some(45_001))
    );
    // A wrong entry, removed again.
    let e3 = ctx
        .ok(
            StatusCode::CREATED,
            Method::POST,
            &te,
            &tech,
            Some(json!({"minutes": 600})),
        )
        .await;
    ctx.ok(
        StatusCode::NO_CONTENT,
        Method::DELETE,
        &format!("/api/v1/time-entries/{}", e3["id"]),
        &tech,
        None,
    )
    .await;
    // External: crane hire ₹15,000.00 (supervisors, not technicians).
    let xc = format!("/api/v1/work-orders/{wo}/external-costs");
    let (s, _) = ctx
        .call(
            Method::POST,
            &xc,
            &tech,
            Some(json!({"vendor": "V", "amount_paise": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let x = ctx.ok(StatusCode::CREATED, Method::POST, &xc, &sup,
        Some(json!({"vendor": "Sai Cranes", "description": "crane, half day", "amount_paise": 1_500_000}))).await;

    // Completion consumes the reservation (7 - 2 = 5 > reorder point 4: no notification).
    ver = ctx.act(wo, ver, "complete", &tech).await;
    let st = ctx.stock(&tech, store, fan).await;
    assert_eq!(
        (st["on_hand"].as_i64(), st["reserved"].as_i64()),
        (Some(5), Some(0))
    );
    assert!(ctx.notifications(&auditor, fan).await.is_empty());
    let (s, b) = ctx.reserve(&tech, wo, store, fan, 1).await;
    assert_eq!(
        (s, b["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/work-order-completed")),
        "{b}"
    );
    let costs = format!("/api/v1/work-orders/{wo}/costs");
    let c = ctx
        .ok(StatusCode::OK, Method::GET, &costs, &auditor, None)
        .await;
    assert_eq!(
        c,
        json!({"work_order_id": wo, "status": "COMPLETED", "labour_minutes": 135, "labour_paise": 120_001,
               "parts_paise": 250_100, "parts_reserved_paise": 0, "external_paise": 1_500_000,
               "total_paise": 1_870_101, "currency": "INR", "locked": false})
    );
    let (_, list) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/reservations?work_order_id={wo}&state=consumed"),
            &auditor,
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // CLOSED locks costs: no new or removed labour, parts or external costs.
    ctx.act(wo, ver, "close", &sup).await;
    let c = ctx
        .ok(StatusCode::OK, Method::GET, &costs, &auditor, None)
        .await;
    assert_eq!(
        (c["total_paise"].as_i64(), c["locked"].as_bool()),
        (Some(1_870_101), Some(true))
    );
    let final_ = Some("/problems/work-order-final");
    for (m, uri, body) in [
        (
            Method::POST,
            te.clone(),
            Some(json!({"minutes": 5, "hourly_rate_paise": 1})),
        ),
        (
            Method::POST,
            xc.clone(),
            Some(json!({"vendor": "V", "amount_paise": 1})),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/reservations"),
            Some(json!({"store_id": store, "part_id": fuse, "quantity": 1})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/time-entries/{}", e1["id"]),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/external-costs/{}", x["id"]),
            None,
        ),
    ] {
        let (s, b) = ctx.call(m.clone(), &uri, &sup, body).await;
        assert_eq!(
            (s, b["type"].as_str()),
            (StatusCode::CONFLICT, final_),
            "{m} {uri}: {b}"
        );
    }
    let c2 = ctx
        .ok(StatusCode::OK, Method::GET, &costs, &auditor, None)
        .await;
    assert_eq!(c2["total_paise"], c["total_paise"]);

    // Reorder: 5 → 4 crosses the point (one notification); 4 → 3 does not
    // repeat it; a receipt above the point re-arms; 8 → 4 raises again.
    let consume = |n: i64| {
        let (sup, tech) = (sup.clone(), tech.clone());
        async move {
            let (w, v) = ctx.work_order(site, &sup, tech_id, &tech, true).await;
            let (s, b) = ctx.reserve(&tech, w, store, fan, n).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            ctx.act(w, v, "complete", &tech).await;
        }
    };
    consume(1).await;
    let n = ctx.notifications(&auditor, fan).await;
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        (
            n[0]["on_hand"].as_i64(),
            n[0]["reorder_point"].as_i64(),
            n[0]["reorder_qty"].as_i64(),
            n[0]["store_id"].as_i64()
        ),
        (Some(4), Some(4), Some(10), Some(store))
    );
    consume(1).await;
    assert_eq!(
        ctx.notifications(&auditor, fan).await.len(),
        1,
        "raised once per crossing"
    );
    let (_, below) = ctx
        .call(
            Method::GET,
            "/api/v1/stock?below_reorder=true",
            &auditor,
            None,
        )
        .await;
    assert_eq!(below["items"].as_array().unwrap().len(), 1);
    ctx.ok(
        StatusCode::OK,
        Method::POST,
        &receipts,
        &sup,
        Some(json!({"part_id": fan, "quantity": 5})),
    )
    .await;
    consume(4).await;
    let n = ctx.notifications(&auditor, fan).await;
    assert_eq!(n.len(), 2, "{n:?}");
    assert_eq!(n[0]["on_hand"].as_i64(), Some(4), "newest first");

    // Cancel releases reservations (before work starts).
    let (w, v) = ctx.work_order(site, &sup, tech_id, &tech, false).await;
    let (s, r) = ctx.reserve(&sup, w, store, fan, 3).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(
        ctx.stock(&sup, store, fan).await["reserved"].as_i64(),
        Some(3)
    );
    ctx.act(w, v, "cancel", &sup).await;
    let st = ctx.stock(&sup, store, fan).await;
    assert_eq!(
        (st["on_hand"].as_i64(), st["reserved"].as_i64()),
        (Some(4), Some(0))
    );
    let r = ctx
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/reservations/{}", r["id"]),
            &auditor,
            None,
        )
        .await;
    assert_eq!(r["state"], "released");
    let c = ctx
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/work-orders/{w}/costs"),
            &auditor,
            None,
        )
        .await;
    assert_eq!(
        (c["total_paise"].as_i64(), c["locked"].as_bool()),
        (Some(0), Some(true))
    );

    // Adjustments: never below zero or below reserved; audited.
    let adj = format!("/api/v1/stores/{store}/adjustments");
    let (s, b) = ctx
        .call(
            Method::POST,
            &adj,
            &sup,
            Some(json!({"part_id": fan, "delta": -5, "reason": "count"})),
        )
        .await;
    assert_eq!((s, field(&b)), (StatusCode::CONFLICT, Some("delta")), "{b}");
    let st = ctx
        .ok(
            StatusCode::OK,
            Method::POST,
            &adj,
            &sup,
            Some(json!({"part_id": fan, "delta": -1, "reason": "damaged in storage"})),
        )
        .await;
    assert_eq!(st["on_hand"].as_i64(), Some(3));
    assert_eq!(
        ctx.notifications(&auditor, fan).await.len(),
        2,
        "still below the point: no repeat"
    );

    // Everything above is in the audit chain, which is intact.
    let (_, log) = ctx
        .call(Method::GET, "/api/v1/audit?limit=1000", &auditor, None)
        .await;
    let actions: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entity"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("stock", "receive"),
        ("stock", "adjust"),
        ("stock", "update"),
        ("reservation", "reserve"),
        ("reservation", "consume"),
        ("reservation", "release"),
        ("time_entry", "create"),
        ("time_entry", "delete"),
        ("external_cost", "create"),
        ("part", "create"),
        ("store", "create"),
    ] {
        assert!(
            actions.iter().any(|(e, a)| e == want.0 && a == want.1),
            "no audit of {want:?}"
        );
    }
    assert!(audit::verify(&ctx.db).await.is_ok());

    // Every new endpoint is in the OpenAPI document.
    let (s, doc) = call(&ctx.router, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    for (path, method) in [
        ("/api/v1/parts", "get"),
        ("/api/v1/parts", "post"),
        ("/api/v1/parts/{id}", "get"),
        ("/api/v1/parts/{id}", "patch"),
        ("/api/v1/stores", "get"),
        ("/api/v1/stores", "post"),
        ("/api/v1/stores/{id}", "get"),
        ("/api/v1/stores/{id}/receipts", "post"),
        ("/api/v1/stores/{id}/adjustments", "post"),
        ("/api/v1/stock", "get"),
        ("/api/v1/stores/{id}/stock/{part_id}", "get"),
        ("/api/v1/stores/{id}/stock/{part_id}", "patch"),
        ("/api/v1/work-orders/{id}/reservations", "post"),
        ("/api/v1/reservations", "get"),
        ("/api/v1/reservations/{id}", "get"),
        ("/api/v1/reservations/{id}/release", "post"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/work-orders/{id}/time-entries", "post"),
        ("/api/v1/time-entries", "get"),
        ("/api/v1/time-entries/{id}", "delete"),
        ("/api/v1/work-orders/{id}/external-costs", "post"),
        ("/api/v1/external-costs", "get"),
        ("/api/v1/external-costs/{id}", "delete"),
        ("/api/v1/work-orders/{id}/costs", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from OpenAPI"
        );
    }
    for schema in [
        "Part",
        "Stock",
        "Reservation",
        "Notification",
        "TimeEntry",
        "ExternalCost",
        "CostRollup",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}

/// 20 concurrent reservations of 1 unit against a stock of 7: exactly 7
/// succeed, 13 are 409 naming `quantity`, and `on_hand - reserved` is never
/// negative (sampled while they run, then bypassing the API: the CHECK).
async fn concurrent_reservations(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (tech_id, tech) = ctx.user("tech", Role::Technician).await;
    let site = ctx.site(&admin, "RACE-1").await;
    let store = ctx
        .ok(
            StatusCode::CREATED,
            Method::POST,
            "/api/v1/stores",
            &admin,
            Some(json!({"site_id": site, "name": "S"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let part = ctx
        .ok(StatusCode::CREATED, Method::POST, "/api/v1/parts", &admin,
            Some(json!({"part_number": "IGBT-1", "name": "IGBT module", "unit": "each", "unit_cost_paise": 2_000_000})))
        .await["id"].as_i64().unwrap();
    ctx.ok(
        StatusCode::OK,
        Method::POST,
        &format!("/api/v1/stores/{store}/receipts"),
        &admin,
        Some(json!({"part_id": part, "quantity": 7})),
    )
    .await;
    let (wo, _) = ctx.work_order(site, &admin, tech_id, &tech, true).await;

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (router, admin, done) = (ctx.router.clone(), admin.clone(), done.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !done.load(Ordering::Relaxed) || samples == 0 {
                let (s, st) = call(
                    &router,
                    Method::GET,
                    &format!("/api/v1/stores/{store}/stock/{part}"),
                    Some(&admin),
                    None,
                )
                .await;
                assert_eq!(s, StatusCode::OK);
                assert!(st["available"].as_i64().unwrap() >= 0, "{st}");
                assert!(st["reserved"].as_i64().unwrap() <= 7, "{st}");
                samples += 1;
                tokio::task::yield_now().await;
            }
            samples
        })
    };
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let router = ctx.router.clone();
            // Half as the assigned technician, half as the admin.
            let t = if i % 2 == 0 {
                tech.clone()
            } else {
                admin.clone()
            };
            tokio::spawn(async move {
                call(
                    &router,
                    Method::POST,
                    &format!("/api/v1/work-orders/{wo}/reservations"),
                    Some(&t),
                    Some(json!({"store_id": store, "part_id": part, "quantity": 1})),
                )
                .await
            })
        })
        .collect();
    let mut won = 0;
    let mut refused = 0;
    for t in tasks {
        let (s, b) = t.await.unwrap();
        match s {
            StatusCode::CREATED => won += 1,
            StatusCode::CONFLICT => {
                assert_eq!(
                    (b["type"].as_str(), field(&b)),
                    (Some("/problems/insufficient-stock"), Some("quantity")),
                    "{b}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {b}"),
        }
    }
    done.store(true, Ordering::Relaxed);
    assert!(sampler.await.unwrap() > 0);
    assert_eq!((won, refused), (7, 13));
    let st = ctx.stock(&admin, store, part).await;
    assert_eq!(
        (
            st["on_hand"].as_i64(),
            st["reserved"].as_i64(),
            st["available"].as_i64()
        ),
        (Some(7), Some(7), Some(0))
    );
    let (_, l) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/reservations?work_order_id={wo}&state=reserved"),
            &admin,
            None,
        )
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 7);
    // The second line: the database itself refuses over-reservation.
    let r = on_db!(&ctx.db, p => sqlx::query("UPDATE stock SET reserved = reserved + 1 WHERE store_id = $1").bind(store).execute(p).await.map(|_| ()));
    assert!(r.is_err(), "CHECK (reserved <= on_hand) must refuse");
    let r = on_db!(&ctx.db, p => sqlx::query("UPDATE stock SET on_hand = -1, reserved = 0 WHERE store_id = $1").bind(store).execute(p).await.map(|_| ()));
    assert!(r.is_err(), "CHECK (on_hand >= 0) must refuse");
    // And the lifecycle: completing consumes all 7; stock is then 0, not negative.
    let v = ctx
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/work-orders/{wo}"),
            &admin,
            None,
        )
        .await["version"]
        .as_i64()
        .unwrap();
    ctx.act(wo, v, "complete", &tech).await;
    let st = ctx.stock(&admin, store, part).await;
    assert_eq!(
        (st["on_hand"].as_i64(), st["reserved"].as_i64()),
        (Some(0), Some(0))
    );
    let c = ctx
        .ok(
            StatusCode::OK,
            Method::GET,
            &format!("/api/v1/work-orders/{wo}/costs"),
            &admin,
            None,
        )
        .await;
    assert_eq!(c["parts_paise"].as_i64(), Some(14_000_000));
}

#[tokio::test]
async fn sqlite_inventory_and_costs_scenario() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_reservations_never_overdraw() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_reservations(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_inventory_and_costs_scenario() {
    let url = testing::fresh_postgres_database().await.unwrap();
    scenario(&Ctx::new(&url).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_reservations_never_overdraw() {
    let url = testing::fresh_postgres_database().await.unwrap();
    concurrent_reservations(&Ctx::new(&url).await).await;
}
