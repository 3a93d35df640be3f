//! Work-order detail through the HTTP API, on SQLite always and on Postgres
//! with `--features postgres-tests`: checklists recorded by the assigned
//! (crew) technician, follow-ups from failed items, completion refused with
//! unanswered required items, comments, crews, the SLA and its breached
//! filter; and webhooks: signed, retried with backoff, dead-lettered.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use dcmms_cloud::auth::{Role, users};
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use dcmms_cloud::webhooks::delivery::{self, Settings};
use dcmms_cloud::{Db, on_db, testing, webhooks};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const HOUR_MS: i64 = 3_600_000;

struct Ctx {
    db: Db,
    caches: Arc<dcmms_cloud::db::Caches>,
    router: axum::Router,
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
        method: Method,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Value {
        let (s, b) = self.call(method.clone(), uri, token, body).await;
        assert!(s.is_success(), "{method} {uri}: {s} {b}");
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
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"username": name, "password": PASSWORD}).to_string(),
            ))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        (u.id, body["token"].as_str().unwrap().to_string())
    }

    async fn act(&self, wo: i64, token: &str, action: &str) -> (StatusCode, Value) {
        let (_, cur) = self
            .call(
                Method::GET,
                &format!("/api/v1/work-orders/{wo}"),
                token,
                None,
            )
            .await;
        self.call(
            Method::POST,
            &format!("/api/v1/work-orders/{wo}/transitions"),
            token,
            Some(json!({"version": cur["version"], "action": action})),
        )
        .await
    }
}

async fn work_orders(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (_, sup) = ctx.user("sup", Role::Supervisor).await;
    let (tech_id, tech) = ctx.user("tech", Role::Technician).await;
    let (_, tech2) = ctx.user("tech2", Role::Technician).await;
    ctx.ok(
        Method::PATCH,
        &format!("/api/v1/users/{tech_id}"),
        &admin,
        Some(json!({"version": 1, "hourly_rate_paise": 50000})),
    )
    .await;
    let (_, auditor) = ctx.user("auditor", Role::Auditor).await;
    let site = ctx
        .ok(
            Method::POST,
            "/api/v1/sites",
            &admin,
            Some(json!({
                "code": "BH4", "name": "Bhadla block 4", "kind": "solar",
                "ac_capacity_kw": 50000.0, "latitude": 27.54, "longitude": 71.92,
                "time_zone": "Asia/Kolkata", "grid_connection_point": "Bhadla 400 kV"
            })),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    // A crew with the technician in it; technicians may not manage crews.
    let crew_body = json!({"site_id": site, "name": "Block 4 day shift", "members": [tech_id]});
    let (s, _) = ctx
        .call(
            Method::POST,
            "/api/v1/crews",
            &tech,
            Some(crew_body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let crew = ctx
        .ok(Method::POST, "/api/v1/crews", &sup, Some(crew_body.clone()))
        .await;
    assert_eq!(crew["members"], json!([tech_id]));
    let (s, _) = ctx
        .call(Method::POST, "/api/v1/crews", &sup, Some(crew_body))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "duplicate crew name");
    let crew_id = crew["id"].as_i64().unwrap();

    // A P2 work order: SLA 24 h from creation.
    let wo = ctx
        .ok(
            Method::POST,
            "/api/v1/work-orders",
            &sup,
            Some(json!({"site_id": site, "kind": "inspection", "title": "Quarterly inverter inspection", "priority": 2})),
        )
        .await;
    let id = wo["id"].as_i64().unwrap();
    assert_eq!(
        wo["sla_due_ms"].as_i64().unwrap(),
        wo["created_ms"].as_i64().unwrap() + 24 * HOUR_MS
    );
    assert_eq!(wo["sla_breached"], json!(false));

    // The checklist.
    let tasks = format!("/api/v1/work-orders/{id}/tasks");
    let t1 = ctx
        .ok(
            Method::POST,
            &tasks,
            &sup,
            Some(
                json!({"text": "Cabinet fans run", "kind": "pass_fail", "follow_up_on_fail": true}),
            ),
        )
        .await;
    let t2 = ctx
        .ok(Method::POST, &tasks, &sup, Some(json!({"text": "DC bus voltage", "kind": "number", "unit": "V", "min": 600.0, "max": 800.0})))
        .await;
    let t3 = ctx
        .ok(
            Method::POST,
            &tasks,
            &sup,
            Some(json!({"text": "Remarks", "kind": "text", "required": false})),
        )
        .await;
    assert_eq!(
        (
            t1["position"].as_i64(),
            t2["position"].as_i64(),
            t3["position"].as_i64()
        ),
        (Some(1), Some(2), Some(3))
    );
    let (s, _) = ctx
        .call(
            Method::POST,
            &tasks,
            &sup,
            Some(json!({"text": "x", "kind": "text", "unit": "V"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = ctx
        .call(
            Method::POST,
            &tasks,
            &tech,
            Some(json!({"text": "x", "kind": "text"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "technicians do not edit checklists"
    );
    let result = |t: &Value| {
        format!(
            "/api/v1/work-orders/{id}/tasks/{}/result",
            t["id"].as_i64().unwrap()
        )
    };

    // Assign to the crew, approve, schedule.
    let cur = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders/{id}"),
            &sup,
            None,
        )
        .await;
    let assigned = ctx
        .ok(
            Method::POST,
            &format!("/api/v1/work-orders/{id}/crew"),
            &sup,
            Some(json!({"version": cur["version"], "crew_id": crew_id})),
        )
        .await;
    assert_eq!(assigned["crew_id"], json!(crew_id));
    assert_eq!(ctx.act(id, &sup, "approve").await.0, StatusCode::OK);
    assert_eq!(ctx.act(id, &sup, "schedule").await.0, StatusCode::OK);
    // Results only while IN_PROGRESS.
    let (s, b) = ctx
        .call(
            Method::POST,
            &result(&t2),
            &sup,
            Some(json!({"version": 1, "value": 650})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    // Not in the crew, not the assignee: 403. A crew member may start.
    assert_eq!(ctx.act(id, &tech2, "start").await.0, StatusCode::FORBIDDEN);
    let (s, b) = ctx.act(id, &tech, "start").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, _) = ctx
        .call(
            Method::POST,
            &result(&t2),
            &tech2,
            Some(json!({"version": 1, "value": 650})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = ctx
        .call(
            Method::POST,
            &result(&t2),
            &tech,
            Some(json!({"version": 1, "value": "high"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a number item wants a number");
    let r2 = ctx
        .ok(
            Method::POST,
            &result(&t2),
            &tech,
            Some(json!({"version": 1, "value": 650, "note": "steady"})),
        )
        .await;
    assert_eq!(r2["task"]["passed"], json!(true));
    assert_eq!(r2["task"]["result_by"], json!(tech_id));
    assert!(r2["follow_up"].is_null());
    let (s, _) = ctx
        .call(
            Method::POST,
            &result(&t2),
            &tech,
            Some(json!({"version": 1, "value": 651})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "stale task version");

    // Crew members log time on the crew's orders; others may not.
    let te = format!("/api/v1/work-orders/{id}/time-entries");
    let (s, b) = ctx
        .call(Method::POST, &te, &tech, Some(json!({"minutes": 45})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = ctx
        .call(Method::POST, &te, &tech2, Some(json!({"minutes": 45})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Completing with the required fan check unanswered: 409 naming it.
    let (s, b) = ctx.act(id, &tech, "complete").await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert!(
        b["detail"].as_str().unwrap().contains("Cabinet fans run"),
        "{b}"
    );
    assert!(!b["detail"].as_str().unwrap().contains("DC bus"), "{b}");

    // A failed item marked follow_up_on_fail raises a linked corrective order.
    let r1 = ctx
        .ok(
            Method::POST,
            &result(&t1),
            &tech,
            Some(json!({"version": 1, "value": false, "note": "fan 2 seized"})),
        )
        .await;
    assert_eq!(r1["task"]["passed"], json!(false));
    let f1 = &r1["follow_up"];
    assert_eq!(f1["parent_id"], json!(id));
    assert_eq!(f1["kind"], json!("corrective"));
    assert_eq!(f1["status"], json!("REQUESTED"));
    assert_eq!(r1["task"]["follow_up_id"], f1["id"]);
    // An out-of-range number fails; its follow-up is raised on request, once.
    let r2 = ctx
        .ok(
            Method::POST,
            &result(&t2),
            &tech,
            Some(json!({"version": 2, "value": 905.5})),
        )
        .await;
    assert_eq!(r2["task"]["passed"], json!(false));
    assert!(r2["follow_up"].is_null());
    let fu = format!("/api/v1/work-orders/{id}/tasks/{}/follow-up", t2["id"]);
    let (s, f2) = ctx.call(Method::POST, &fu, &tech, None).await;
    assert_eq!(s, StatusCode::CREATED, "{f2}");
    assert_eq!(f2["parent_id"], json!(id));
    assert_eq!(
        ctx.call(Method::POST, &fu, &tech, None).await.0,
        StatusCode::CONFLICT
    );
    let fu3 = format!("/api/v1/work-orders/{id}/tasks/{}/follow-up", t3["id"]);
    assert_eq!(
        ctx.call(Method::POST, &fu3, &tech, None).await.0,
        StatusCode::CONFLICT
    );
    let children = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders?parent_id={id}"),
            &sup,
            None,
        )
        .await;
    assert_eq!(children["items"].as_array().unwrap().len(), 2);
    // Now it completes (the text item is optional).
    let (s, b) = ctx.act(id, &tech, "complete").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let listed = ctx.ok(Method::GET, &tasks, &auditor, None).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[1]["value"], json!(905.5));
    assert_eq!(listed[1]["unit"], json!("V"));

    // Comments.
    let comments = format!("/api/v1/work-orders/{id}/comments");
    ctx.ok(
        Method::POST,
        &comments,
        &tech,
        Some(json!({"body": "Fan 2 bearing seized, photo attached"})),
    )
    .await;
    ctx.ok(
        Method::POST,
        &comments,
        &sup,
        Some(json!({"body": "Spare ordered"})),
    )
    .await;
    let (s, _) = ctx
        .call(
            Method::POST,
            &comments,
            &auditor,
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = ctx
        .call(Method::POST, &comments, &sup, Some(json!({"body": " "})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let list = ctx.ok(Method::GET, &comments, &auditor, None).await;
    let bodies: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        ["Fan 2 bearing seized, photo attached", "Spare ordered"]
    );
    let page = ctx
        .ok(Method::GET, &format!("{comments}?limit=1"), &auditor, None)
        .await;
    assert_eq!(page["next_offset"], json!(1));

    // SLA breached: a P1 order whose due time has passed.
    let late = ctx
        .ok(
            Method::POST,
            "/api/v1/work-orders",
            &sup,
            Some(json!({"site_id": site, "kind": "corrective", "title": "Trip at ICR 2", "priority": 1})),
        )
        .await;
    let late_id = late["id"].as_i64().unwrap();
    assert_eq!(
        late["sla_due_ms"].as_i64().unwrap(),
        late["created_ms"].as_i64().unwrap() + 4 * HOUR_MS
    );
    let past = late["created_ms"].as_i64().unwrap() - HOUR_MS;
    on_db!(&ctx.db, p => sqlx::query("UPDATE work_orders SET sla_due_ms = $1 WHERE id = $2").bind(past).bind(late_id).execute(p).await.map(|_| ())).unwrap();
    // The completed order is past due too, but its SLA is settled.
    on_db!(&ctx.db, p => sqlx::query("UPDATE work_orders SET sla_due_ms = $1 WHERE id = $2").bind(past).bind(id).execute(p).await.map(|_| ())).unwrap();
    let got = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/work-orders/{late_id}"),
            &sup,
            None,
        )
        .await;
    assert_eq!(got["sla_breached"], json!(true));
    let breached = ctx
        .ok(
            Method::GET,
            "/api/v1/work-orders?sla_breached=true",
            &sup,
            None,
        )
        .await;
    let ids: Vec<i64> = breached["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [late_id]);
    let fine = ctx
        .ok(
            Method::GET,
            "/api/v1/work-orders?sla_breached=false",
            &sup,
            None,
        )
        .await;
    let fine: Vec<i64> = fine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_i64().unwrap())
        .collect();
    assert!(!fine.contains(&late_id) && fine.contains(&id), "{fine:?}");
    let (s, _) = ctx
        .call(
            Method::GET,
            "/api/v1/work-orders?sla_breached=maybe",
            &sup,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A crew member is not an assignee of an order that is not the crew's.
    assert_eq!(ctx.act(late_id, &sup, "approve").await.0, StatusCode::OK);
    assert_eq!(ctx.act(late_id, &sup, "schedule").await.0, StatusCode::OK);
    assert_eq!(
        ctx.act(late_id, &tech, "start").await.0,
        StatusCode::FORBIDDEN
    );

    assert!(dcmms_cloud::audit::verify(&ctx.db).await.unwrap() > 0);
}

/// What the test receiver saw: (path, headers, body).
type Seen = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let handler = move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
        let seen = s2.clone();
        async move {
            let path = uri.path().to_string();
            let n = {
                let mut v = seen.lock().unwrap();
                v.push((path.clone(), headers, body));
                v.iter().filter(|(p, _, _)| *p == path).count()
            };
            match path.as_str() {
                // The first two deliveries fail, then it accepts.
                "/flaky" if n <= 2 => StatusCode::INTERNAL_SERVER_ERROR,
                "/flaky" => StatusCode::NO_CONTENT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            }
        }
    };
    let router = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), seen)
}

async fn webhooks_scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("hookadmin", Role::Admin).await;
    let (_, sup) = ctx.user("hooksup", Role::Supervisor).await;
    let (base, seen) = receiver().await;
    let secret = "s3cret-for-the-flaky-endpoint";
    let body =
        json!({"url": format!("{base}/flaky"), "events": ["work_order.created"], "secret": secret});
    let (s, _) = ctx
        .call(Method::POST, "/api/v1/webhooks", &sup, Some(body.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "only admins manage webhooks");
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/webhooks",
            &admin,
            Some(json!({"url": "ftp://x", "events": ["work_order.created"]})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("url"))
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/webhooks",
            &admin,
            Some(json!({"url": "http://x", "events": ["nope"]})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("events"))
    );
    let flaky = ctx
        .ok(Method::POST, "/api/v1/webhooks", &admin, Some(body))
        .await;
    assert_eq!(flaky["secret"], json!(secret), "shown once, at creation");
    let flaky_id = flaky["id"].as_i64().unwrap();
    let dead = ctx
        .ok(
            Method::POST,
            "/api/v1/webhooks",
            &admin,
            Some(json!({"url": format!("{base}/down"), "events": ["alarm.raised"]})),
        )
        .await;
    assert!(dead["secret"].as_str().unwrap().len() >= 16, "generated");
    let dead_id = dead["id"].as_i64().unwrap();
    let got = ctx
        .ok(
            Method::GET,
            &format!("/api/v1/webhooks/{flaky_id}"),
            &admin,
            None,
        )
        .await;
    assert!(got.get("secret").is_none(), "{got}");
    let all = ctx.ok(Method::GET, "/api/v1/webhooks", &admin, None).await;
    assert!(!all.to_string().contains(secret));

    // Events: a work order (work_order.created) and an alarm, as the alarm
    // module would raise it, through the public enqueue in its transaction.
    let site = ctx
        .ok(
            Method::POST,
            "/api/v1/sites",
            &admin,
            Some(json!({
                "code": "HK", "name": "Hook site", "kind": "wind",
                "ac_capacity_kw": 1000.0, "latitude": 1.0, "longitude": 1.0,
                "time_zone": "UTC", "grid_connection_point": "x"
            })),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let wo = ctx
        .ok(
            Method::POST,
            "/api/v1/work-orders",
            &admin,
            Some(json!({"site_id": site, "kind": "corrective", "title": "Yaw fault"})),
        )
        .await;
    let mut tx = ctx.db.write(&ctx.caches).await.unwrap();
    webhooks::enqueue(&mut tx, "alarm.raised", json!({"alarm_id": 7}), 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // A rolled-back change sends nothing.
    let mut tx = ctx.db.write(&ctx.caches).await.unwrap();
    webhooks::enqueue(&mut tx, "work_order.created", json!({"rolled": "back"}), 1)
        .await
        .unwrap();
    drop(tx);

    let settings = Settings {
        max_attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
    };
    let stop = CancellationToken::new();
    let task = delivery::spawn(ctx.db.clone(), ctx.caches.clone(), settings, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ok, dl) = loop {
        let ok = ctx
            .ok(
                Method::GET,
                &format!("/api/v1/webhooks/{flaky_id}/deliveries"),
                &admin,
                None,
            )
            .await;
        let dl = ctx
            .ok(
                Method::GET,
                &format!("/api/v1/webhooks/{dead_id}/deliveries?status=dead"),
                &admin,
                None,
            )
            .await;
        if ok["items"][0]["status"] == json!("delivered")
            && dl["items"].as_array().unwrap().len() == 1
        {
            break (ok, dl);
        }
        assert!(
            Instant::now() < deadline,
            "deliveries did not settle: {ok} {dl}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    stop.cancel();
    task.await.unwrap();
    // A dead letter can be queued again (admins); a delivered one cannot.
    let dead_delivery = dl["items"][0]["id"].as_i64().unwrap();
    let again = ctx
        .ok(
            Method::POST,
            &format!("/api/v1/webhooks/{dead_id}/deliveries/{dead_delivery}/redeliver"),
            &admin,
            None,
        )
        .await;
    assert_eq!(
        (again["status"].as_str(), again["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    let delivered = ok["items"][0]["id"].as_i64().unwrap();
    let (s, _) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{flaky_id}/deliveries/{delivered}/redeliver"),
            &admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = ctx
        .call(
            Method::POST,
            &format!("/api/v1/webhooks/{dead_id}/deliveries/{dead_delivery}/redeliver"),
            &sup,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let ok = &ok["items"].as_array().unwrap();
    assert_eq!(
        ok.len(),
        1,
        "one work_order.created; the rolled-back one never queued"
    );
    assert_eq!(ok[0]["attempts"], json!(3));
    assert_eq!(ok[0]["event"], json!("work_order.created"));
    assert_eq!(ok[0]["body"]["data"]["work_order"]["id"], wo["id"]);
    let dl = &dl["items"][0];
    assert_eq!(dl["attempts"], json!(4));
    assert_eq!(dl["status"], json!("dead"));
    assert_eq!(dl["last_status"], json!(500));

    let seen = seen.lock().unwrap();
    let flaky_seen: Vec<_> = seen.iter().filter(|(p, _, _)| p == "/flaky").collect();
    assert_eq!(flaky_seen.len(), 3);
    assert_eq!(seen.iter().filter(|(p, _, _)| p == "/down").count(), 4);
    for (_, h, body) in &flaky_seen {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h["x-dcmms-signature"].to_str().unwrap(), want);
        assert_eq!(h["x-dcmms-event"].to_str().unwrap(), "work_order.created");
        assert_eq!(
            h["x-dcmms-delivery"].to_str().unwrap(),
            ok[0]["id"].as_i64().unwrap().to_string()
        );
        let parsed: Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["delivery_id"], ok[0]["id"]);
    }
}

#[tokio::test]
async fn sqlite_work_order_detail() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(&testing::sqlite_url(dir.path())).await;
    work_orders(&ctx).await;
    webhooks_scenario(&ctx).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_work_order_detail() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let url = testing::fresh_postgres_database().await.unwrap();
    let ctx = Ctx::new(&url).await;
    work_orders(&ctx).await;
    webhooks_scenario(&ctx).await;
}

#[tokio::test]
async fn the_new_endpoints_are_in_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(&testing::sqlite_url(dir.path())).await;
    let (s, doc) = ctx
        .call(Method::GET, "/api/v1/openapi.json", "none", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    for p in [
        "/api/v1/work-orders/{id}/tasks",
        "/api/v1/work-orders/{id}/tasks/{task_id}/result",
        "/api/v1/work-orders/{id}/tasks/{task_id}/follow-up",
        "/api/v1/work-orders/{id}/comments",
        "/api/v1/work-orders/{id}/crew",
        "/api/v1/crews",
        "/api/v1/crews/{id}",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{id}/deliveries",
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing");
    }
    for schema in ["Task", "Comment", "Crew", "Subscription", "Delivery"] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }
    let wo = &doc["components"]["schemas"]["WorkOrder"]["properties"];
    assert!(wo.get("sla_breached").is_some() && wo.get("crew_id").is_some());
}
