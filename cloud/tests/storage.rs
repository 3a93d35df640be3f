//! One scenario of ingest and reads, run against SQLite always and against
//! Postgres with `--features postgres-tests`.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use dcmms_cloud::{Db, gateways, testing};
use dcmms_shared::wire::{Compression, encode};
use dcmms_shared::{Batch, Quality, Sample, Series};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const T0: i64 = 1_782_000_000_000; // aligned to 15 minutes

fn batch(gw: &str, seq: u64) -> Batch {
    let mk = |point: &str, unit: &str, f: fn(i64) -> f64| Series {
        device: "inv-01".into(),
        point: point.into(),
        unit: unit.into(),
        samples: (0..120)
            .map(|i| Sample {
                ts_ms: T0 + (seq as i64 - 1) * 120_000 + i * 1000,
                value: f(i),
                quality: if i == 7 { Quality::Bad } else { Quality::Good },
            })
            .collect(),
    };
    Batch {
        gateway_id: gw.into(),
        first_sequence: seq,
        sequence: seq,
        created_ms: T0,
        polled_through_ms: T0 + seq as i64 * 120_000,
        drops: vec![],
        series: vec![
            mk("ac_power", "W", |i| 1000.0 + i as f64),
            mk("dc_voltage", "V", |i| 800.0 - (i % 10) as f64),
        ],
    }
}

struct Ctx {
    db: Db,
    router: axum::Router,
}

impl Ctx {
    async fn new(url: &str) -> Ctx {
        let db = Db::connect(url).await.unwrap();
        let state = AppState {
            db: db.clone(),
            metrics: Arc::new(CloudMetrics::default()),
        };
        Ctx {
            router: app(state, 16 * 1024 * 1024),
            db,
        }
    }

    async fn post(
        &self,
        cred: Option<&str>,
        ctype: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, Value) {
        let mut req = Request::post("/api/v1/ingest").header(header::CONTENT_TYPE, ctype);
        if let Some(c) = cred {
            req = req.header(header::AUTHORIZATION, format!("Bearer {c}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, String, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ctype, json)
    }
}

const BATCH: &str = dcmms_shared::api::BATCH_CONTENT_TYPE;
const PROBLEM: &str = dcmms_shared::api::PROBLEM_CONTENT_TYPE;

async fn scenario(url: &str) {
    let ctx = Ctx::new(url).await;
    let a = gateways::create(&ctx.db, "gw-a", "Gateway A")
        .await
        .unwrap();
    let b = gateways::create(&ctx.db, "gw-b", "Gateway B")
        .await
        .unwrap();
    assert!(matches!(
        gateways::create(&ctx.db, "gw-a", "again").await,
        Err(gateways::GatewayError::Exists(_))
    ));

    // First delivery is stored.
    let frame = encode(&batch("gw-a", 1), Compression::Zstd { level: 3 }).unwrap();
    let (st, _, ack) = ctx.post(Some(&a.credential), BATCH, frame.clone()).await;
    assert_eq!(st, StatusCode::OK, "{ack}");
    assert_eq!(ack["status"], "stored");
    assert_eq!(ack["samples"], 240);
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 240);

    // A replay is acknowledged and not stored again.
    let (st, _, ack) = ctx.post(Some(&a.credential), BATCH, frame.clone()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ack["status"], "duplicate");
    assert_eq!(ack["samples"], 0);
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 240);

    // Wrong, missing and malformed credentials: 401 with a problem body.
    let wrong = format!("gw-a.{}", "0".repeat(64));
    for cred in [Some(wrong.as_str()), None, Some("no-separator")] {
        let (st, ct, body) = ctx.post(cred, BATCH, frame.clone()).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{cred:?}");
        assert_eq!(ct, PROBLEM);
        assert_eq!(body["field"], "authorization");
    }

    // Malformed batch: 400 naming the body, nothing stored.
    let mut bad = encode(&batch("gw-a", 9), Compression::None).unwrap();
    bad.truncate(bad.len() - 3);
    let (st, ct, body) = ctx.post(Some(&a.credential), BATCH, bad).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(ct, PROBLEM);
    assert_eq!(body["field"], "body");
    assert!(body["detail"].as_str().unwrap().contains("bytes"), "{body}");
    let (st, _, _) = ctx
        .post(Some(&a.credential), BATCH, b"garbage".to_vec())
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Wrong media type: 415.
    let (st, ct, body) = ctx
        .post(Some(&a.credential), "application/json", frame.clone())
        .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(ct, PROBLEM);
    assert_eq!(body["field"], "content-type");

    // A gateway cannot write another gateway's data.
    let (st, _, _) = ctx.post(Some(&b.credential), BATCH, frame.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 240);

    // Concurrent deliveries of one new batch: exactly one is stored.
    let frame2 = encode(&batch("gw-a", 2), Compression::Zstd { level: 3 }).unwrap();
    let sends = (0..8).map(|_| ctx.post(Some(&a.credential), BATCH, frame2.clone()));
    let results = futures::future::join_all(sends).await;
    let stored = results
        .iter()
        .filter(|(s, _, a)| *s == StatusCode::OK && a["status"] == "stored")
        .count();
    let dups = results
        .iter()
        .filter(|(s, _, a)| *s == StatusCode::OK && a["status"] == "duplicate")
        .count();
    assert_eq!((stored, dups), (1, 7), "{results:?}");
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 480);

    // Reads: gateways, devices, points.
    let (st, _, gws) = ctx.get("/api/v1/gateways").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(gws["items"][0]["id"], "gw-a");
    assert_eq!(gws["items"][0]["last_sequence"], 2);
    assert!(gws.to_string().find("secret").is_none());
    let (_, _, devs) = ctx.get("/api/v1/devices?gateway_id=gw-a").await;
    assert_eq!(devs["items"][0]["device"], "inv-01");
    assert_eq!(devs["items"][0]["point_count"], 2);
    let (_, _, pts) = ctx.get("/api/v1/points?gateway_id=gw-a&limit=1").await;
    assert_eq!(pts["items"].as_array().unwrap().len(), 1);
    assert_eq!(pts["items"][0]["point"], "ac_power");
    assert_eq!(pts["items"][0]["unit"], "W");
    assert_eq!(pts["next_offset"], 1);
    let (_, _, pts2) = ctx
        .get("/api/v1/points?gateway_id=gw-a&limit=1&offset=1")
        .await;
    assert_eq!(pts2["items"][0]["point"], "dc_voltage");
    assert!(pts2.get("next_offset").is_none());
    let id = pts["items"][0]["id"].as_i64().unwrap();

    // Raw samples over a range, with paging.
    let uri = format!(
        "/api/v1/points/{id}/samples?from={T0}&to={}&limit=100",
        T0 + 240_000
    );
    let (st, _, raw) = ctx.get(&uri).await;
    assert_eq!(st, StatusCode::OK, "{raw}");
    let s = raw["samples"].as_array().unwrap();
    assert_eq!(s.len(), 100);
    assert_eq!(s[0]["ts_ms"], T0);
    assert_eq!(s[0]["value"], 1000.0);
    assert_eq!(s[7]["quality"], "bad");
    assert_eq!(s[8]["quality"], "good");
    let next = raw["next_from"].as_i64().unwrap();
    assert_eq!(next, T0 + 99_000 + 1);
    let (_, _, rest) = ctx
        .get(&format!(
            "/api/v1/points/{id}/samples?from={next}&to={}&limit=1000",
            T0 + 240_000
        ))
        .await;
    assert_eq!(rest["samples"].as_array().unwrap().len(), 140);
    assert!(rest.get("next_from").is_none());

    // 1-minute aggregates: each minute has values 1000+i for 60 consecutive i.
    let (_, _, agg) = ctx
        .get(&format!(
            "/api/v1/points/{id}/samples?from={T0}&to={}&resolution=1m",
            T0 + 240_000
        ))
        .await;
    let bk = agg["buckets"].as_array().unwrap();
    assert_eq!(bk.len(), 4, "{agg}");
    assert_eq!(bk[0]["ts_ms"], T0);
    assert_eq!(bk[0]["min"], 1000.0);
    assert_eq!(bk[0]["max"], 1059.0);
    assert_eq!(bk[0]["avg"], 1029.5);
    assert_eq!(bk[0]["count"], 60);
    assert_eq!(bk[2]["min"], 1000.0); // batch 2 starts again at 1000
    // 15-minute aggregate: one bucket with all 240 samples.
    let (_, _, agg15) = ctx
        .get(&format!(
            "/api/v1/points/{id}/samples?from={T0}&to={}&resolution=15m",
            T0 + 900_000
        ))
        .await;
    let b15 = agg15["buckets"].as_array().unwrap();
    assert_eq!(b15.len(), 1);
    assert_eq!(b15[0]["count"], 240);
    assert_eq!(b15[0]["max"], 1119.0);

    // Bad parameters name the field.
    for (uri, field) in [
        (
            format!("/api/v1/points/{id}/samples?from=yesterday"),
            "from",
        ),
        (
            format!("/api/v1/points/{id}/samples?resolution=5m"),
            "resolution",
        ),
        (format!("/api/v1/points/{id}/samples?limit=0"), "limit"),
        (format!("/api/v1/points/{id}/samples?colour=red"), "colour"),
        ("/api/v1/points/abc/samples".to_string(), "id"),
    ] {
        let (st, ct, body) = ctx.get(&uri).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(ct, PROBLEM);
        assert_eq!(body["field"], field, "{uri}: {body}");
    }
    let (st, ct, _) = ctx.get("/api/v1/points/999999/samples").await;
    assert_eq!((st, ct.as_str()), (StatusCode::NOT_FOUND, PROBLEM));

    // Operations endpoints.
    let (st, _, h) = ctx.get("/healthz").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["database"], ctx.db.kind());
    let (_, _, doc) = ctx.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/ingest"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/points/{id}/samples"]["get"].is_object());
    let resp = ctx
        .router
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("dcmms_cloud_ingest_samples_total 480"),
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/v1/points/{id}/samples\""),
        "{text}"
    );
    ctx.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_read_scenario_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&testing::sqlite_url(dir.path())).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_read_scenario_on_postgres() {
    let url = testing::fresh_postgres_database().await.unwrap();
    scenario(&url).await;
}
