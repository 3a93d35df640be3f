//! The anomaly model registry (docs/specs/model-registry.md) on both
//! databases: upload checks, assignment to an asset class and to a
//! gateway, the gateway's sync and downloads, rollback, and drift reports
//! becoming notices and `model.drift` webhooks.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use dcmms_cloud::auth::Role;
use dcmms_cloud::{audit, gateways, testing};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::Ctx;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn metadata(version: &str, onnx: &[u8]) -> Value {
    json!({
        "format": "dcmms-anomaly-model/1", "model_id": "wt-ae", "version": version,
        "asset_class": "wind_turbine", "feature_set": "wind_turbine/1",
        "onnx_sha256": sha(onnx), "roles": [], "params": {}, "features": [],
        "window": {"sample_period_ms": 1000, "length": 180, "step": 10},
        "score": {"raise": 0.8, "clear": 0.4, "raise_count": 3, "clear_count": 30},
        "training": {}
    })
}

fn upload_body(meta: Value, onnx: &[u8]) -> Value {
    json!({"metadata": meta, "onnx_base64": base64::engine::general_purpose::STANDARD.encode(onnx)})
}

async fn sync(ctx: &Ctx, cred: &str, body: Value) -> (StatusCode, Value) {
    ctx.call(
        Method::POST,
        "/api/v1/gateway/models/sync",
        Some(cred),
        Some(body),
    )
    .await
}

fn versions(answer: &Value) -> Vec<String> {
    answer["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["version"].as_str().unwrap().to_string())
        .collect()
}

async fn scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (_, ops) = ctx.user("ops", Role::OperationsManager).await;
    let (_, sup) = ctx.user("sup", Role::Supervisor).await;
    let gw = gateways::create(&ctx.db, "gw-m", "wind farm gateway")
        .await
        .unwrap();
    gateways::create(&ctx.db, "gw-other", "another")
        .await
        .unwrap();
    let (v1, v2) = (
        b"onnx graph, version 1".to_vec(),
        b"onnx graph, v2".to_vec(),
    );

    // Upload: checked, audited, unique.
    let (s, m) = ctx
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&ops),
            Some(upload_body(metadata("1.0.0", &v1), &v1)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    assert_eq!(
        (m["onnx_sha256"].as_str(), m["onnx_bytes"].as_i64()),
        (Some(sha(&v1).as_str()), Some(v1.len() as i64))
    );
    let bad = |field: &str, body: Value| (field.to_string(), body);
    for (field, body) in [
        bad("metadata.version", upload_body(metadata("1.0.0", &v1), &v1)),
        bad(
            "metadata.onnx_sha256",
            upload_body(metadata("1.0.1", &v2), &v1),
        ),
        bad(
            "onnx_base64",
            json!({"metadata": metadata("1.0.1", &v1), "onnx_base64": "***"}),
        ),
        bad(
            "metadata.asset_class",
            upload_body(
                {
                    let mut x = metadata("1.0.1", &v1);
                    x["asset_class"] = "toaster".into();
                    x
                },
                &v1,
            ),
        ),
        bad(
            "metadata.format",
            upload_body(
                {
                    let mut x = metadata("1.0.1", &v1);
                    x["format"] = "other/1".into();
                    x
                },
                &v1,
            ),
        ),
        bad(
            "metadata.model_id",
            upload_body(
                {
                    let mut x = metadata("1.0.1", &v1);
                    x["model_id"] = "has space".into();
                    x
                },
                &v1,
            ),
        ),
    ] {
        let (s, b) = ctx
            .call(Method::POST, "/api/v1/models", Some(&ops), Some(body))
            .await;
        let want = if field == "metadata.version" {
            StatusCode::CONFLICT
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(
            (s, b["field"].as_str()),
            (want, Some(field.as_str())),
            "{b}"
        );
    }
    let (s, _) = ctx
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&sup),
            Some(upload_body(metadata("1.1.0", &v2), &v2)),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "supervisors do not manage models");
    let (s, _) = ctx
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&admin),
            Some(upload_body(metadata("1.1.0", &v2), &v2)),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, list) = ctx
        .call(Method::GET, "/api/v1/models", Some(&sup), None)
        .await;
    let listed: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["1.0.0", "1.1.0"]);

    // The gateway: nothing assigned yet; its credential is required.
    let running = |v: &str, bytes: &[u8], err: Option<&str>| json!({"running": [{"model_id": "wt-ae", "version": v, "onnx_sha256": sha(bytes), "last_error": err}]});
    let (s, a) = sync(ctx, &gw.credential, running("1.0.0", &v1, None)).await;
    assert_eq!((s, versions(&a).len()), (StatusCode::OK, 0), "{a}");
    let (s, _) = ctx
        .call_raw(
            Method::POST,
            "/api/v1/gateway/models/sync",
            None,
            Some(running("1.0.0", &v1, None)),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = ctx
        .call_raw(
            Method::POST,
            "/api/v1/gateway/models/sync",
            Some("gw-m.wrong"),
            Some(running("1.0.0", &v1, None)),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Asset class, then the gateway's own assignment, which wins.
    let assign = |target: Value, version: &str| json!({"target": target, "model_id": "wt-ae", "version": version});
    let (s, b) = ctx
        .call(
            Method::PUT,
            "/api/v1/models/assignments",
            Some(&ops),
            Some(assign(json!({"asset_class": "wind_turbine"}), "1.0.0")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    for (target, version, field) in [
        (
            json!({"asset_class": "pv_inverter"}),
            "1.0.0",
            "target.asset_class",
        ),
        (
            json!({"gateway_id": "gw-nope"}),
            "1.0.0",
            "target.gateway_id",
        ),
        (
            json!({"gateway_id": "gw-m", "asset_class": "wind_turbine"}),
            "1.0.0",
            "target",
        ),
        (json!({"gateway_id": "gw-m"}), "9.9.9", "version"),
    ] {
        let (s, b) = ctx
            .call(
                Method::PUT,
                "/api/v1/models/assignments",
                Some(&ops),
                Some(assign(target, version)),
            )
            .await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{b}"
        );
    }
    let (_, a) = sync(ctx, &gw.credential, running("1.0.0", &v1, None)).await;
    assert_eq!(versions(&a), ["1.0.0"]);
    let (s, _) = ctx
        .call(
            Method::PUT,
            "/api/v1/models/assignments",
            Some(&ops),
            Some(assign(json!({"gateway_id": "gw-m"}), "1.1.0")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, a) = sync(ctx, &gw.credential, running("1.0.0", &v1, None)).await;
    assert_eq!(a["assignments"][0]["onnx_sha256"], sha(&v2).as_str(), "{a}");
    let (_, st) = ctx
        .call(Method::GET, "/api/v1/models/gateways", Some(&sup), None)
        .await;
    assert_eq!(
        (
            st[0]["running_version"].as_str(),
            st[0]["assigned_version"].as_str(),
            st[0]["in_sync"].as_bool()
        ),
        (Some("1.0.0"), Some("1.1.0"), Some(false)),
        "{st}"
    );

    // The gateway fetches both files of its assignment.
    let (s, bytes) = ctx
        .call_raw(
            Method::GET,
            "/api/v1/gateway/models/wt-ae/1.1.0/onnx",
            Some(&gw.credential),
            None,
        )
        .await;
    assert_eq!((s, bytes), (StatusCode::OK, v2.clone()));
    let (s, meta) = ctx
        .call_raw(
            Method::GET,
            "/api/v1/gateway/models/wt-ae/1.1.0/metadata",
            Some(&gw.credential),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&meta).unwrap(),
        metadata("1.1.0", &v2)
    );
    for uri in [
        "/api/v1/gateway/models/wt-ae/7.0.0/onnx",
        "/api/v1/gateway/models/wt-ae/1.1.0/weights",
    ] {
        let (s, _) = ctx
            .call_raw(Method::GET, uri, Some(&gw.credential), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
    }
    let (s, _) = ctx
        .call_raw(
            Method::GET,
            "/api/v1/gateway/models/wt-ae/1.1.0/onnx",
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // It runs it now; a failure of a later version would show here too.
    sync(ctx, &gw.credential, running("1.1.0", &v2, None)).await;
    let (_, st) = ctx
        .call(Method::GET, "/api/v1/models/gateways", Some(&sup), None)
        .await;
    assert_eq!(st[0]["in_sync"], true, "{st}");
    sync(
        ctx,
        &gw.credential,
        running("1.1.0", &v2, Some("wt-ae@1.2.0: not a usable ONNX model")),
    )
    .await;
    let (_, st) = ctx
        .call(Method::GET, "/api/v1/models/gateways", Some(&sup), None)
        .await;
    assert_eq!(st[0]["last_error"], "wt-ae@1.2.0: not a usable ONNX model");

    // Rollback needs an earlier, different version of the same target:
    // gw-m has only had 1.1.0 of its own, gw-other nothing.
    let rollback = |target: Value| json!({"target": target, "model_id": "wt-ae"});
    for g in ["gw-m", "gw-other"] {
        let (s, b) = ctx
            .call(
                Method::POST,
                "/api/v1/models/assignments/rollback",
                Some(&ops),
                Some(rollback(json!({"gateway_id": g}))),
            )
            .await;
        assert_eq!(
            (s, b["field"].as_str()),
            (StatusCode::CONFLICT, Some("model_id")),
            "{g}: {b}"
        );
    }
    let (_, a) = sync(ctx, &gw.credential, running("1.1.0", &v2, None)).await;
    assert_eq!(
        versions(&a),
        ["1.1.0"],
        "a refused rollback changes nothing"
    );
    let (s, r) = ctx
        .call(
            Method::PUT,
            "/api/v1/models/assignments",
            Some(&ops),
            Some(assign(json!({"gateway_id": "gw-m"}), "1.0.0")),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let (s, _) = ctx
        .call(
            Method::PUT,
            "/api/v1/models/assignments",
            Some(&ops),
            Some(assign(json!({"gateway_id": "gw-m"}), "1.1.0")),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, r) = ctx
        .call(
            Method::POST,
            "/api/v1/models/assignments/rollback",
            Some(&ops),
            Some(rollback(json!({"gateway_id": "gw-m"}))),
        )
        .await;
    assert_eq!(
        (s, r["version"].as_str(), r["action"].as_str()),
        (StatusCode::OK, Some("1.0.0"), Some("rollback")),
        "{r}"
    );
    let (_, a) = sync(ctx, &gw.credential, running("1.1.0", &v2, None)).await;
    assert_eq!(versions(&a), ["1.0.0"]);
    let (_, r) = ctx
        .call(
            Method::POST,
            "/api/v1/models/assignments/rollback",
            Some(&ops),
            Some(rollback(json!({"gateway_id": "gw-m"}))),
        )
        .await;
    assert_eq!(r["version"], "1.1.0", "a second rollback returns");
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/models/assignments/rollback",
            Some(&ops),
            Some(rollback(json!({"asset_class": "wind_turbine"}))),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("model_id")),
        "{b}"
    );
    let (_, cur) = ctx
        .call(Method::GET, "/api/v1/models/assignments", Some(&sup), None)
        .await;
    assert_eq!(cur.as_array().unwrap().len(), 2, "{cur}");

    // Drift: one report past its threshold is a notice and a webhook.
    let (s, sub) = ctx
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&admin),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["model.drift"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    let report = |asset: &str, psi: [f64; 2]| {
        json!({
        "asset": asset, "model_id": "wt-ae", "model_version": "1.1.0", "windows": 360,
        "from_ms": 1_000, "to_ms": 3_601_000, "threshold": 0.25,
        "features": [{"feature": "wind_mean", "psi": psi[0]}, {"feature": "gearbox_rise", "psi": psi[1]}]})
    };
    let mut body = running("1.1.0", &v2, None);
    body["drift"] = json!([
        report("WTG-01", [0.02, 0.41]),
        report("WTG-02", [0.03, 0.05])
    ]);
    let (s, a) = sync(ctx, &gw.credential, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (_, all) = ctx
        .call(Method::GET, "/api/v1/models/drift", Some(&sup), None)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
    let (_, notices) = ctx
        .call(
            Method::GET,
            "/api/v1/models/drift?notice=true",
            Some(&sup),
            None,
        )
        .await;
    let n = &notices["items"];
    assert_eq!(n.as_array().unwrap().len(), 1, "{notices}");
    assert_eq!(
        (
            n[0]["asset"].as_str(),
            n[0]["max_psi"].as_f64(),
            n[0]["features"][0]["feature"].as_str()
        ),
        (Some("WTG-01"), Some(0.41), Some("gearbox_rise")),
        "{notices}"
    );
    let (_, d) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{}/deliveries", sub["id"]),
            Some(&admin),
            None,
        )
        .await;
    let d = d["items"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["event"], "model.drift");
    body["drift"][0]["features"][1]["psi"] = json!(-1.0);
    let (s, b) = sync(ctx, &gw.credential, body).await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("drift[0].features[1].psi")),
        "{b}"
    );

    assert!(audit::verify(&ctx.db).await.unwrap() > 8);
}

#[tokio::test]
async fn sqlite_model_registry() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_model_registry() {
    let url = testing::fresh_postgres_database().await.unwrap();
    scenario(&Ctx::new(&url).await).await;
}
