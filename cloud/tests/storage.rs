//! One scenario of ingest and reads, run against SQLite always and against
//! Postgres with `--features postgres-tests`.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dcmms_cloud::auth::Role;
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use dcmms_cloud::{Db, gateways, retention, testing};
use dcmms_shared::wire::{Compression, encode};
use dcmms_shared::{Batch, Drop, DropReason, DroppedSpan, Quality, Sample, Series};
use serde_json::{Value, json};
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
        events: vec![],
        series: vec![
            mk("ac_power", "W", |i| 1000.0 + i as f64),
            mk("dc_voltage", "V", |i| 800.0 - (i % 10) as f64),
        ],
    }
}

struct Ctx {
    db: Db,
    caches: Arc<dcmms_cloud::db::Caches>,
    router: axum::Router,
    /// An auditor's API token: the reads need `read_telemetry`, and the
    /// least privileged role has it.
    token: String,
}

impl Ctx {
    async fn new(url: &str) -> Ctx {
        let db = Db::connect(url).await.unwrap();
        let state = AppState::new(db.clone(), Arc::new(CloudMetrics::default()));
        let token = testing::api_token(&db, &state.caches, Role::Auditor)
            .await
            .unwrap();
        Ctx {
            caches: state.caches.clone(),
            router: app(state, 16 * 1024 * 1024),
            db,
            token,
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

    /// GET with the auditor's token.
    async fn get(&self, uri: &str) -> (StatusCode, String, Value) {
        self.get_as(uri, Some(&self.token)).await
    }

    async fn get_as(&self, uri: &str, token: Option<&str>) -> (StatusCode, String, Value) {
        let mut req = Request::get(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(req.body(Body::empty()).unwrap()).await
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

    // Telemetry reads need a user token: none, a bogus one and a gateway's
    // own credential are all 401 problem+json.
    for uri in [
        "/api/v1/gateways".to_string(),
        "/api/v1/devices".to_string(),
        "/api/v1/points".to_string(),
        format!("/api/v1/points/{id}/samples"),
        format!("/api/v1/points/{id}/samples?resolution=1m"),
        format!("/api/v1/gateways/gw-a/completeness?from={T0}&to={}", T0 + 1),
    ] {
        for token in [None, Some("dcmms_00"), Some(a.credential.as_str())] {
            let (st, ct, body) = ctx.get_as(&uri, token).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{uri} with {token:?}: {body}");
            assert_eq!(ct, PROBLEM, "{uri}");
        }
    }

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

fn series(point: &str, ts: impl Iterator<Item = (i64, f64)>) -> Series {
    Series {
        device: "inv-02".into(),
        point: point.into(),
        unit: "W".into(),
        samples: ts
            .map(|(ts_ms, value)| Sample {
                ts_ms,
                value,
                quality: Quality::Good,
            })
            .collect(),
    }
}

fn ranged(first: u64, last: u64, polled: i64, series: Vec<Series>, drops: Vec<Drop>) -> Batch {
    Batch {
        gateway_id: "gw-r".into(),
        first_sequence: first,
        sequence: last,
        created_ms: polled,
        polled_through_ms: polled,
        series,
        drops,
        events: vec![],
    }
}

fn span(point: &str, from_ms: i64, to_ms: i64, samples: u64) -> DroppedSpan {
    DroppedSpan {
        device: "inv-02".into(),
        point: point.into(),
        from_ms,
        to_ms,
        samples,
    }
}

const DAY: i64 = 86_400_000;

/// Sequence ranges, drop reports, completeness, rollups and retention.
async fn ranges_scenario(url: &str) {
    let ctx = Ctx::new(url).await;
    let gw = gateways::create(&ctx.db, "gw-r", "Ranges").await.unwrap();
    let cred = Some(gw.credential.as_str());
    let post = |b: &Batch| ctx.post(cred, BATCH, encode(b, Compression::None).unwrap());

    // 10..=12 merged on the edge: 90 samples of p from T0 (one NaN), and the
    // drops the edge made before it: 5..=7 (capacity, spans of p and q),
    // 8 (corrupt, no spans), 9 (age, a p span long before the range asked).
    let p_values = |i: i64| if i == 3 { f64::NAN } else { 1000.0 + i as f64 };
    let b10 = ranged(
        10,
        12,
        T0 + 90_000,
        vec![series("p", (0..90).map(|i| (T0 + i * 1000, p_values(i))))],
        vec![
            Drop {
                first_sequence: 5,
                last_sequence: 7,
                reason: DropReason::Capacity,
                spans: vec![
                    span("p", T0 - 600_000, T0 - 300_001, 300),
                    span("q", T0 - 600_000, T0 - 1, 600),
                ],
            },
            Drop {
                first_sequence: 8,
                last_sequence: 8,
                reason: DropReason::Corrupt,
                spans: vec![],
            },
            Drop {
                first_sequence: 9,
                last_sequence: 9,
                reason: DropReason::Age,
                spans: vec![span("p", T0 - 2_000_000, T0 - 1_900_000, 100)],
            },
        ],
    );
    let (st, _, ack) = post(&b10).await;
    assert_eq!(st, StatusCode::OK, "{ack}");
    assert_eq!(
        (
            &ack["status"],
            &ack["samples"],
            &ack["first_sequence"],
            &ack["sequence"]
        ),
        (&json!("stored"), &json!(90), &json!(10), &json!(12))
    );
    // Its replay is a duplicate and writes nothing (drop reports included:
    // a second copy would show up twice in the completeness report below).
    let (st, _, ack) = post(&b10).await;
    assert_eq!((st, &ack["status"]), (StatusCode::OK, &json!("duplicate")));
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 90);

    // Partial overlaps and containment: 409 naming the body, nothing written.
    let one = |first, last| {
        ranged(
            first,
            last,
            T0 + 200_000,
            vec![series("p", [(T0 + 500_000, 1.0)].into_iter())],
            vec![],
        )
    };
    for (first, last) in [(12, 13), (11, 11), (9, 10), (9, 14), (10, 11), (12, 12)] {
        let (st, ct, body) = post(&one(first, last)).await;
        assert_eq!(st, StatusCode::CONFLICT, "{first}..={last}: {body}");
        assert_eq!(ct, PROBLEM);
        assert_eq!(body["type"], "/problems/sequence-conflict");
        assert_eq!(body["field"], "body");
    }
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 90);

    // 1..=2 arrives late, with older samples and an older watermark.
    let b1 = ranged(
        1,
        2,
        T0 - 800_000,
        vec![series("p", (0..10).map(|i| (T0 - 900_000 + i * 1000, 5.0)))],
        vec![],
    );
    assert_eq!(post(&b1).await.2["status"], "stored");
    let from = T0 - 600_000;
    let to = T0 + 60_500;
    let uri = format!("/api/v1/gateways/gw-r/completeness?from={from}&to={to}");
    let (st, _, c) = ctx.get(&uri).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["polled_through_ms"], T0 + 90_000);

    // 15 adds samples into the second minute (rollups merge) and moves the watermark.
    let b15 = ranged(
        15,
        15,
        T0 + 120_000,
        vec![series(
            "p",
            (0..30).map(|j| (T0 + 90_000 + j * 1000, 2000.0 + j as f64)),
        )],
        vec![],
    );
    assert_eq!(post(&b15).await.2["status"], "stored");
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 130);

    let (st, _, c) = ctx.get(&uri).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(
        c,
        json!({
            "gateway_id": "gw-r", "from": from, "to": to, "polled_through_ms": T0 + 120_000,
            "sequences": {
                "received": [[1, 2], [10, 12], [15, 15]],
                "dropped": [[5, 9]],
                "in_flight": [[3, 4], [13, 14]],
            },
            "points": [
                // 61 samples in [T0, T0 + 60 500): 60 from the rollup of the
                // whole first minute (the NaN one counts), 1 from the partial minute.
                {"device": "inv-02", "point": "p", "received": 61,
                 "first_ms": T0, "last_ms": T0 + 60_000,
                 "dropped": [{"from_ms": T0 - 600_000, "to_ms": T0 - 300_001, "samples": 300,
                              "reason": "capacity"}]},
                {"device": "inv-02", "point": "q", "received": 0,
                 "first_ms": null, "last_ms": null,
                 "dropped": [{"from_ms": T0 - 600_000, "to_ms": T0 - 1, "samples": 600,
                              "reason": "capacity"}]},
            ],
        })
    );
    // A range inside one minute is counted on the raw samples alone.
    let (_, _, c2) = ctx
        .get(&format!(
            "/api/v1/gateways/gw-r/completeness?from={}&to={}",
            T0 + 1500,
            T0 + 4500
        ))
        .await;
    assert_eq!(c2["points"][0]["received"], 3, "{c2}");
    assert_eq!(c2["points"][0]["first_ms"], T0 + 2000);
    // q has no samples and no drop overlapping this range: not listed.
    assert_eq!(c2["points"].as_array().unwrap().len(), 1, "{c2}");
    assert_eq!(c2["points"][0]["dropped"], json!([]));

    // Bad parameters name the field; unknown gateways are 404.
    for (q, field) in [
        (format!("from={from}"), "to"),
        (format!("to={to}"), "from"),
        (format!("from=abc&to={to}"), "from"),
        (format!("from={to}&to={from}"), "from"),
        (format!("from={from}&to=x"), "to"),
        (format!("from={from}&to={to}&limit=3"), "limit"),
    ] {
        let (st, ct, body) = ctx
            .get(&format!("/api/v1/gateways/gw-r/completeness?{q}"))
            .await;
        assert_eq!((st, ct.as_str()), (StatusCode::BAD_REQUEST, PROBLEM), "{q}");
        assert_eq!(body["field"], field, "{q}: {body}");
    }
    let (st, ct, _) = ctx
        .get(&format!(
            "/api/v1/gateways/nope/completeness?from={from}&to={to}"
        ))
        .await;
    assert_eq!((st, ct.as_str()), (StatusCode::NOT_FOUND, PROBLEM));
    let (_, _, doc) = ctx.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/api/v1/gateways/{id}/completeness"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Completeness"].is_object());

    // Rollup aggregates: the NaN is not counted; batch 15 merged into minute 2.
    let (_, _, pts) = ctx.get("/api/v1/points?gateway_id=gw-r").await;
    let pid = pts["items"][0]["id"].as_i64().unwrap();
    let (_, _, agg) = ctx
        .get(&format!(
            "/api/v1/points/{pid}/samples?from={T0}&to={}&resolution=1m",
            T0 + 120_000
        ))
        .await;
    let bk = agg["buckets"].as_array().unwrap();
    assert_eq!(bk.len(), 2, "{agg}");
    let sum0: f64 = (0..60).filter(|i| *i != 3).map(|i| 1000.0 + i as f64).sum();
    assert_eq!(
        bk[0],
        json!({"ts_ms": T0, "min": 1000.0, "avg": sum0 / 59.0, "max": 1059.0, "count": 59})
    );
    let sum1: f64 = (60..90).map(|i| 1000.0 + i as f64).sum::<f64>()
        + (0..30).map(|j| 2000.0 + j as f64).sum::<f64>();
    assert_eq!(
        bk[1],
        json!({"ts_ms": T0 + 60_000, "min": 1060.0, "avg": sum1 / 60.0, "max": 2029.0, "count": 60})
    );
    let (_, _, agg15) = ctx
        .get(&format!(
            "/api/v1/points/{pid}/samples?from={}&to={}&resolution=15m",
            T0 + 1,
            T0 + 2
        ))
        .await;
    assert_eq!(agg15["buckets"][0]["count"], 119, "{agg15}");
    assert_eq!(agg15["buckets"][0]["min"], 1000.0);

    // Retention: 400 days after T0 + 1 h, the day before T0 goes, T0's day stays.
    let now = T0 + 400 * DAY + 3_600_000;
    let none = retention::run_pass(&ctx.db, &ctx.caches, 0, now)
        .await
        .unwrap();
    assert_eq!(none.cut_ms, None);
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 130);
    let r = retention::run_pass(&ctx.db, &ctx.caches, 400, now)
        .await
        .unwrap();
    assert_eq!(r.cut_ms, Some(T0));
    match ctx.db.kind() {
        "postgres" => assert_eq!(r.partitions_dropped, vec!["samples_p20260620".to_string()]),
        _ => assert_eq!(r.samples_deleted, 10),
    }
    assert_eq!(r.rollups_deleted, 1);
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 120);
    let raw_old = format!("/api/v1/points/{pid}/samples?from={}&to={T0}", T0 - DAY);
    assert_eq!(ctx.get(&raw_old).await.2["samples"], json!([]));
    assert_eq!(
        ctx.get(&format!("{raw_old}&resolution=1m")).await.2["buckets"],
        json!([])
    );
    let (_, _, recent) = ctx
        .get(&format!(
            "/api/v1/points/{pid}/samples?from={T0}&to={}&limit=1000",
            T0 + DAY
        ))
        .await;
    assert_eq!(recent["samples"].as_array().unwrap().len(), 120);
    let again = retention::run_pass(&ctx.db, &ctx.caches, 400, now)
        .await
        .unwrap();
    assert!(
        again.partitions_dropped.is_empty() && again.samples_deleted == 0,
        "{again:?}"
    );
    // Data for a retained day can still arrive (its partition comes back).
    let late = ranged(
        16,
        16,
        T0 + 130_000,
        vec![series("p", [(T0 - 500_000, 7.0)].into_iter())],
        vec![],
    );
    assert_eq!(post(&late).await.2["status"], "stored");
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), 121);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_drops_completeness_retention_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    ranges_scenario(&testing::sqlite_url(dir.path())).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_drops_completeness_retention_on_postgres() {
    let url = testing::fresh_postgres_database().await.unwrap();
    ranges_scenario(&url).await;
}

/// 1-minute and 15-minute aggregates `(bucket, count, min, max, sum)`
/// recomputed from raw samples.
fn recompute(samples: &[Value], bucket: i64) -> Vec<Agg> {
    let mut out: std::collections::BTreeMap<i64, (i64, Option<f64>, Option<f64>, f64)> =
        Default::default();
    for s in samples {
        let ts = s["ts_ms"].as_i64().unwrap();
        let e = out.entry(ts.div_euclid(bucket) * bucket).or_default();
        if let Some(v) = s["value"].as_f64() {
            e.0 += 1;
            e.1 = Some(e.1.map_or(v, |m: f64| m.min(v)));
            e.2 = Some(e.2.map_or(v, |m: f64| m.max(v)));
            e.3 += v;
        }
    }
    out.into_iter()
        .map(|(b, (c, mi, ma, su))| (b, c, mi, ma, su))
        .collect()
}

type Agg = (i64, i64, Option<f64>, Option<f64>, f64);

/// Equal buckets, counts and extremes; sums equal up to rounding (the API
/// returns the average).
fn same(got: &[Agg], want: &[Agg], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1, g.2, g.3), (w.0, w.1, w.2, w.3), "{what}");
        assert!(
            (g.4 - w.4).abs() <= 1e-9 * w.4.abs().max(1.0),
            "{what}: {g:?} vs {w:?}"
        );
    }
}

/// Aggregates as the read API returns them, in the shape of [`recompute`].
async fn read_aggregates(ctx: &Ctx, pid: i64, res: &str, from: i64, to: i64) -> Vec<Agg> {
    let (st, _, agg) = ctx
        .get(&format!(
            "/api/v1/points/{pid}/samples?from={from}&to={to}&resolution={res}&limit=10000"
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{agg}");
    agg["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let count = b["count"].as_i64().unwrap();
            let avg = b["avg"].as_f64();
            (
                b["ts_ms"].as_i64().unwrap(),
                count,
                b["min"].as_f64(),
                b["max"].as_f64(),
                avg.map_or(0.0, |a| a * count as f64),
            )
        })
        .collect()
}

/// Many batches of one gateway stored concurrently, their samples
/// interleaved over the same minutes, while rollup deltas are folded (also
/// by a second folder with its own caches, as another process would): every
/// 1-minute and 15-minute aggregate, and every completeness count, equals
/// the recomputation from the raw samples, before and after the last fold.
async fn rollups_scenario(url: &str) {
    let ctx = Ctx::new(url).await;
    let gw = gateways::create(&ctx.db, "gw-c", "Concurrent")
        .await
        .unwrap();
    let frames: Vec<Vec<u8>> = (0..25u64)
        .map(|k| {
            let series = ["p1", "p2", "p3"]
                .iter()
                .enumerate()
                .map(|(j, point)| Series {
                    device: "inv-03".into(),
                    point: (*point).into(),
                    unit: "W".into(),
                    samples: (0..50)
                        .map(|i| {
                            // Batches 0..24 interleave: batch k holds every
                            // 24th second; batch 24 the 50 seconds after.
                            let n = if k < 24 { i * 24 + k as i64 } else { 1200 + i };
                            let value = if (n + j as i64) % 97 == 0 {
                                f64::NAN
                            } else {
                                ((n * 37 + j as i64 * 11) % 101) as f64 * 0.5
                            };
                            Sample {
                                ts_ms: T0 - 300_000 + n * 1000,
                                value,
                                quality: if value.is_nan() {
                                    Quality::Bad
                                } else {
                                    Quality::Good
                                },
                            }
                        })
                        .collect(),
                })
                .collect();
            let b = Batch {
                gateway_id: "gw-c".into(),
                first_sequence: k + 1,
                sequence: k + 1,
                created_ms: T0,
                polled_through_ms: T0,
                series,
                drops: vec![],
                events: vec![],
            };
            encode(&b, Compression::None).unwrap()
        })
        .collect();
    let other = dcmms_cloud::db::Caches::default();
    let folds = async {
        for _ in 0..20 {
            let own = dcmms_cloud::ingest::rollups::fold(&ctx.db, &ctx.caches);
            // A second folder; on Postgres it may lose a serialization race
            // (an error, rolled back), never double-count.
            let foreign = dcmms_cloud::ingest::rollups::fold(&ctx.db, &other);
            let (a, b) = futures::join!(own, foreign);
            for r in [a, b] {
                if let Err(e) = r {
                    let code = e.as_database_error().and_then(|d| d.code());
                    assert_eq!(code.as_deref(), Some("40001"), "{e}");
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let posts = futures::future::join_all(
        frames[..24]
            .iter()
            .map(|f| ctx.post(Some(&gw.credential), BATCH, f.clone())),
    );
    let (mut results, ()) = futures::join!(posts, folds);
    // The last batch after the folds: its deltas are certainly unfolded.
    results.push(
        ctx.post(Some(&gw.credential), BATCH, frames[24].clone())
            .await,
    );
    for (st, _, ack) in &results {
        assert_eq!(
            (*st, &ack["status"]),
            (StatusCode::OK, &json!("stored")),
            "{ack}"
        );
    }
    let unfolded: i64 = dcmms_cloud::on_db!(&ctx.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM rollup_deltas").fetch_one(p).await.unwrap());
    assert!(unfolded >= 3, "{unfolded}");
    let total = 25 * 50 * 3;
    assert_eq!(testing::count_samples(&ctx.db).await.unwrap(), total);

    let (_, _, pts) = ctx.get("/api/v1/points?gateway_id=gw-c").await;
    let pids: Vec<i64> = pts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    let (from, to) = (T0 - 900_000, T0 + 1_800_000);
    for round in ["before the last fold", "after the last fold"] {
        for pid in &pids {
            let (_, _, raw) = ctx
                .get(&format!(
                    "/api/v1/points/{pid}/samples?from={from}&to={to}&limit=10000"
                ))
                .await;
            let raw = raw["samples"].as_array().unwrap().clone();
            assert_eq!(raw.len(), 25 * 50);
            for (res, bucket) in [("1m", 60_000), ("15m", 900_000)] {
                same(
                    &read_aggregates(&ctx, *pid, res, from, to).await,
                    &recompute(&raw, bucket),
                    &format!("point {pid}, {res}, {round}"),
                );
            }
            // A range ending mid-bucket still returns that whole bucket.
            let partial = read_aggregates(&ctx, *pid, "15m", T0 + 1, T0 + 2).await;
            same(&partial, &recompute(&raw, 900_000)[1..2], round);
        }
        let (_, _, c) = ctx
            .get(&format!(
                "/api/v1/gateways/gw-c/completeness?from={}&to={}",
                T0 - 290_500,
                T0 + 800_000
            ))
            .await;
        for p in c["points"].as_array().unwrap() {
            // Seconds T0 - 300 s + n for n in 0..1200 were written; n = 10
            // ..= 1099 fall in the range: whole minutes from the rollups and
            // deltas, the half second at the start from the raw samples.
            assert_eq!(p["received"], 1090, "{round}: {c}");
        }
        let folded = dcmms_cloud::ingest::rollups::fold(&ctx.db, &ctx.caches)
            .await
            .unwrap();
        if round == "after the last fold" {
            assert_eq!(folded, 0);
        }
    }
    ctx.db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_raw_after_concurrent_batches_and_folds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    rollups_scenario(&testing::sqlite_url(dir.path())).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_raw_after_concurrent_batches_and_folds_on_postgres() {
    let url = testing::fresh_postgres_database().await.unwrap();
    rollups_scenario(&url).await;
}
