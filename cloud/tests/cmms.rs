//! The CMMS core through the HTTP API, one scenario run against SQLite
//! always and against Postgres with `--features postgres-tests`: users and
//! login, sites and assets, work orders through their lifecycle, stale
//! updates rejected, the audit chain verified and then tampered with; and a
//! walk of every CMMS endpoint × every role against the permission matrix.
#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use dcmms_cloud::auth::{Permission, Role, allows};
use dcmms_cloud::{audit, on_db, testing};
use serde_json::{Value, json};

mod support;
use support::{Ctx, PASSWORD};

fn site_body(code: &str) -> Value {
    json!({
        "code": code, "name": "Bhadla Solar Park, block 4", "kind": "solar",
        "ac_capacity_kw": 50000.0, "dc_capacity_kwp": 62500.0,
        "latitude": 27.54, "longitude": 71.92, "time_zone": "Asia/Kolkata",
        "grid_connection_point": "Bhadla 400 kV PGCIL substation"
    })
}

async fn scenario(ctx: &Ctx) {
    let (_, admin) = ctx.user("admin", Role::Admin).await;
    let (sup_id, sup) = ctx.user("sup", Role::Supervisor).await;
    let (tech_id, tech) = ctx.user("tech", Role::Technician).await;
    let (_, other_tech) = ctx.user("tech2", Role::Technician).await;
    let (_, auditor) = ctx.user("auditor", Role::Auditor).await;

    // Login: wrong password is 401; five failures lock the name out (429).
    for _ in 0..5 {
        let (s, b) = ctx
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "tech2", "password": "wrong password!!"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    }
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "tech2", "password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    // No token, a bad token: 401.
    assert_eq!(
        ctx.call(Method::GET, "/api/v1/sites", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ctx.call(Method::GET, "/api/v1/sites", Some("dcmms_nope"), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (s, me) = ctx
        .call(Method::GET, "/api/v1/auth/me", Some(&tech), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["role"], "technician");

    // Sites: create, a duplicate code, a bad field named, a stale update.
    let (s, site) = ctx
        .call(
            Method::POST,
            "/api/v1/sites",
            Some(&admin),
            Some(site_body("BHD-04")),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{site}");
    let site_id = site["id"].as_i64().unwrap();
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/sites",
            Some(&admin),
            Some(site_body("BHD-04")),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("code")),
        "{b}"
    );
    let mut bad = site_body("BHD-05");
    bad["latitude"] = json!(123.0);
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/sites", Some(&admin), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("latitude")),
        "{b}"
    );
    let mut bad = site_body("BHD-05");
    bad["kind"] = json!("nuclear");
    let (s, b) = ctx
        .call(Method::POST, "/api/v1/sites", Some(&admin), Some(bad))
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("kind")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/sites",
            Some(&tech),
            Some(site_body("BHD-06")),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let uri = format!("/api/v1/sites/{site_id}");
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&admin),
            Some(json!({"version": 1, "name": "Block 4"})),
        )
        .await;
    assert_eq!((s, b["version"].as_i64()), (StatusCode::OK, Some(2)), "{b}");
    // A second client still holding version 1 must not overwrite.
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &uri,
            Some(&admin),
            Some(json!({"version": 1, "name": "Stale"})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );
    let (_, b) = ctx.call(Method::GET, &uri, Some(&auditor), None).await;
    assert_eq!(b["name"], "Block 4");

    // Assets: inverter with a component; cycles and cross-site parents refused.
    let inv = json!({"site_id": site_id, "name": "INV-07", "class": "inverter", "make": "SMA", "model": "SHP 100-20",
        "serial": "3001234567", "nameplate": {"rated_power_kw": 100}, "commissioned_on": "2024-03-15", "criticality": 4, "tags": ["block-4"]});
    let (s, inv) = ctx
        .call(Method::POST, "/api/v1/assets", Some(&admin), Some(inv))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let inv_id = inv["id"].as_i64().unwrap();
    let (s, fan) = ctx.call(Method::POST, "/api/v1/assets", Some(&admin),
        Some(json!({"site_id": site_id, "parent_id": inv_id, "name": "INV-07 cooling fan", "class": "hvac"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{fan}");
    let fan_id = fan["id"].as_i64().unwrap();
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &format!("/api/v1/assets/{inv_id}"),
            Some(&admin),
            Some(json!({"version": 1, "parent_id": fan_id})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("parent_id")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(&admin),
            Some(json!({"site_id": site_id, "name": "X", "class": "flux_capacitor"})),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("class")),
        "{b}"
    );
    let (_, page) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/assets?parent_id={inv_id}"),
            Some(&tech),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "INV-07 cooling fan");

    // A work order through its whole life, with role and assignment checks.
    let (s, wo) = ctx.call(Method::POST, "/api/v1/work-orders", Some(&tech),
        Some(json!({"site_id": site_id, "asset_id": inv_id, "kind": "corrective", "title": "INV-07 trips on over-temperature",
                    "priority": 2}))).await;
    assert_eq!(
        (s, wo["status"].as_str()),
        (StatusCode::CREATED, Some("REQUESTED")),
        "{wo}"
    );
    let id = wo["id"].as_i64().unwrap();
    let t = |v: i64, action: Value| {
        let mut b = action;
        b["version"] = json!(v);
        b
    };
    let tr = format!("/api/v1/work-orders/{id}/transitions");
    // A technician cannot approve (403); a supervisor can.
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(1, json!({"action": "approve"}))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(1, json!({"action": "approve"}))),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("APPROVED")),
        "{b}"
    );
    // Starting before scheduling is not an edge of the machine: 409.
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(2, json!({"action": "start"}))),
        )
        .await;
    assert_eq!(
        (s, b["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/invalid-transition")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(2, json!({"action": "wait", "reason": "parts"}))),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str(), b["status_reason"].as_str()),
        (StatusCode::OK, Some("WAITING"), Some("parts")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(3, json!({"action": "schedule"}))),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("SCHEDULED")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &format!("/api/v1/work-orders/{id}"),
            Some(&sup),
            Some(json!({"version": 4, "assignee_id": tech_id})),
        )
        .await;
    assert_eq!(
        (s, b["assignee_id"].as_i64()),
        (StatusCode::OK, Some(tech_id)),
        "{b}"
    );
    // Only the assigned technician may start it.
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&other_tech),
            Some(t(5, json!({"action": "start"}))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(5, json!({"action": "start"}))),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("IN_PROGRESS")),
        "{b}"
    );
    // Cancelling after work started: 409. A stale version: 409 on `version`.
    let (s, _) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(6, json!({"action": "cancel"}))),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(5, json!({"action": "hold", "reason": "weather"}))),
        )
        .await;
    assert_eq!(
        (s, b["field"].as_str()),
        (StatusCode::CONFLICT, Some("version")),
        "{b}"
    );
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(json!({"version": 6, "action": "hold"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "hold without a reason: {b}");
    let (s, _) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(
                6,
                json!({"action": "hold", "reason": "weather", "comment": "dust storm"}),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(7, json!({"action": "resume"}))),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(
                8,
                json!({"action": "complete", "comment": "fan replaced"}),
            )),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&tech),
            Some(t(9, json!({"action": "close"}))),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "technicians do not close");
    let (s, b) = ctx
        .call(
            Method::POST,
            &tr,
            Some(&sup),
            Some(t(9, json!({"action": "close"}))),
        )
        .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("CLOSED")),
        "{b}"
    );
    // Closed: no more edits.
    let (s, b) = ctx
        .call(
            Method::PATCH,
            &format!("/api/v1/work-orders/{id}"),
            Some(&sup),
            Some(json!({"version": 10, "priority": 1})),
        )
        .await;
    assert_eq!(
        (s, b["type"].as_str()),
        (StatusCode::CONFLICT, Some("/problems/work-order-final")),
        "{b}"
    );
    let (_, hist) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/work-orders/{id}/history"),
            Some(&auditor),
            None,
        )
        .await;
    let path: Vec<&str> = hist
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to_status"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "REQUESTED",
            "APPROVED",
            "WAITING",
            "SCHEDULED",
            "IN_PROGRESS",
            "ON_HOLD",
            "IN_PROGRESS",
            "COMPLETED",
            "CLOSED"
        ]
    );
    assert_eq!(hist[5]["reason"], "weather");
    assert_eq!(hist[5]["comment"], "dust storm");
    assert_eq!(hist[1]["user_id"].as_i64(), Some(sup_id));
    // Lists filter and sort.
    let (_, l) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/work-orders?site_id={site_id}&status=CLOSED"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let (s, l) = ctx
        .call(
            Method::GET,
            "/api/v1/work-orders?status=DONE",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(
        (s, l["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("status"))
    );
    let (s, l) = ctx
        .call(
            Method::GET,
            "/api/v1/work-orders?sort=colour",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(
        (s, l["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("sort"))
    );

    // Audit: intact; technicians may not read it; an edited row is caught.
    let (s, _) = ctx
        .call(Method::GET, "/api/v1/audit/verify", Some(&tech), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = ctx
        .call(Method::GET, "/api/v1/audit/verify", Some(&auditor), None)
        .await;
    assert_eq!(
        (s, v["intact"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let entries = v["entries"].as_i64().unwrap();
    assert!(entries >= 15, "{v}");
    let (_, log) = ctx
        .call(Method::GET, "/api/v1/audit?limit=200", Some(&auditor), None)
        .await;
    let close = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "close")
        .unwrap();
    assert_eq!(close["actor"], "user:sup");
    assert_eq!(close["before"]["status"], "COMPLETED");
    assert_eq!(close["after"]["status"], "CLOSED");
    let victim = close["seq"].as_i64().unwrap();
    on_db!(&ctx.db, p => sqlx::query("UPDATE audit_log SET actor = 'user:tech' WHERE seq = $1").bind(victim).execute(p).await.map(|_| ())).unwrap();
    match audit::verify(&ctx.db).await {
        Err(audit::AuditError::Broken { seq, .. }) => assert_eq!(seq, victim),
        other => panic!("tampering not detected: {other:?}"),
    }
    let (_, v) = ctx
        .call(Method::GET, "/api/v1/audit/verify", Some(&auditor), None)
        .await;
    assert_eq!(
        (v["intact"].as_bool(), v["broken_at"].as_i64()),
        (Some(false), Some(victim)),
        "{v}"
    );

    // Logout revokes the session.
    let (s, _) = ctx
        .call(Method::POST, "/api/v1/auth/logout", Some(&auditor), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        ctx.call(Method::GET, "/api/v1/auth/me", Some(&auditor), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Every CMMS endpoint with the permission it needs; the walk sends each
/// one as each role and checks 403 exactly where the matrix denies.
/// (Work-order transitions are walked over every role × action × status
/// in the lifecycle's unit tests.)
fn endpoints(
    site: i64,
    asset: i64,
    wo: i64,
    n: usize,
) -> Vec<(Method, String, Option<Value>, Option<Permission>)> {
    let mut v = vec![
        (Method::GET, "/api/v1/auth/me".into(), None, None),
        (
            Method::GET,
            "/api/v1/users".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(
                json!({"username": format!("new{n}"), "display_name": "N", "role": "technician", "password": PASSWORD}),
            ),
            Some(Permission::ManageUsers),
        ),
        (
            Method::PATCH,
            "/api/v1/users/1".into(),
            Some(json!({"version": 999_999, "display_name": "walk"})),
            Some(Permission::ManageUsers),
        ),
        (
            Method::POST,
            "/api/v1/auth/tokens".into(),
            Some(json!({"name": "integration"})),
            None,
        ),
        (
            Method::GET,
            "/api/v1/sites".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/sites".into(),
            Some(site_body(&format!("S-{n}"))),
            Some(Permission::ManageAssets),
        ),
        (
            Method::GET,
            format!("/api/v1/sites/{site}"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            format!("/api/v1/sites/{site}"),
            Some(json!({"version": 999_999})),
            Some(Permission::ManageAssets),
        ),
        (
            Method::GET,
            "/api/v1/assets".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/assets".into(),
            Some(json!({"site_id": site, "name": "A", "class": "meter"})),
            Some(Permission::ManageAssets),
        ),
        (
            Method::GET,
            format!("/api/v1/assets/{asset}"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            format!("/api/v1/assets/{asset}"),
            Some(json!({"version": 999_999})),
            Some(Permission::ManageAssets),
        ),
        (
            Method::GET,
            format!("/api/v1/assets/{asset}/points"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::GET,
            format!("/api/v1/assets/{asset}/meters"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            format!("/api/v1/assets/{asset}/points"),
            Some(json!({"point_id": 999_999, "role": "ac_power"})),
            Some(Permission::ManageAssets),
        ),
        (
            Method::GET,
            "/api/v1/work-orders".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/work-orders".into(),
            Some(json!({"site_id": site, "kind": "inspection", "title": "walk-down"})),
            Some(Permission::RequestWorkOrder),
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{wo}"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            format!("/api/v1/work-orders/{wo}"),
            Some(json!({"version": 999_999})),
            Some(Permission::EditWorkOrder),
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{wo}/history"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/transitions"),
            Some(json!({"version": 999_999, "action": "approve"})),
            Some(Permission::ApproveWorkOrder),
        ),
        // Work-order detail: checklists, comments, crews (ids 999999 do not exist).
        (
            Method::GET,
            format!("/api/v1/work-orders/{wo}/tasks"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/tasks"),
            Some(json!({"text": format!("check {n}"), "kind": "pass_fail"})),
            Some(Permission::EditWorkOrder),
        ),
        (
            Method::POST,
            "/api/v1/work-orders/999999/tasks/999999/result".into(),
            Some(json!({"version": 1, "value": true})),
            Some(Permission::ExecuteWorkOrder),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/tasks/999999/follow-up"),
            None,
            Some(Permission::RequestWorkOrder),
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{wo}/comments"),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/comments"),
            Some(json!({"body": "walk"})),
            Some(Permission::RequestWorkOrder),
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/crew"),
            Some(json!({"version": 999_999, "crew_id": null})),
            Some(Permission::PlanWorkOrder),
        ),
        (
            Method::GET,
            "/api/v1/crews".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/crews".into(),
            Some(json!({"site_id": site, "name": format!("crew {n}")})),
            Some(Permission::PlanWorkOrder),
        ),
        (
            Method::GET,
            "/api/v1/crews/999999".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            "/api/v1/crews/999999".into(),
            Some(json!({"version": 1})),
            Some(Permission::PlanWorkOrder),
        ),
        // Webhooks: admins only (manage_users).
        (
            Method::GET,
            "/api/v1/webhooks".into(),
            None,
            Some(Permission::ManageUsers),
        ),
        (
            Method::POST,
            "/api/v1/webhooks".into(),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["alarm.raised"]})),
            Some(Permission::ManageUsers),
        ),
        (
            Method::GET,
            "/api/v1/webhooks/999999".into(),
            None,
            Some(Permission::ManageUsers),
        ),
        (
            Method::PATCH,
            "/api/v1/webhooks/999999".into(),
            Some(json!({"version": 1})),
            Some(Permission::ManageUsers),
        ),
        (
            Method::GET,
            "/api/v1/webhooks/999999/deliveries".into(),
            None,
            Some(Permission::ManageUsers),
        ),
        (
            Method::POST,
            "/api/v1/webhooks/999999/deliveries/999999/redeliver".into(),
            None,
            Some(Permission::ManageUsers),
        ),
        // PM: plan 1 is the (inactive) plan `role_walk` creates.
        (
            Method::GET,
            "/api/v1/pm/plans".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/pm/plans".into(),
            Some(json!({"site_id": site, "title": "PM", "active": false,
                "schedule": {"type": "calendar", "every": 1, "unit": "month", "anchor_ms": 0}})),
            Some(Permission::ManagePreventivePlans),
        ),
        (
            Method::GET,
            "/api/v1/pm/plans/1".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            "/api/v1/pm/plans/1".into(),
            Some(json!({"version": 999_999})),
            Some(Permission::ManagePreventivePlans),
        ),
        (
            Method::GET,
            "/api/v1/pm/plans/1/occurrences".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/pm/generate".into(),
            None,
            Some(Permission::ManagePreventivePlans),
        ),
        (
            Method::GET,
            "/api/v1/pm/compliance?from=0&to=1".into(),
            None,
            Some(Permission::Read),
        ),
        // Alarms: no rule or alarm 999999 exists (404 when allowed).
        (
            Method::GET,
            "/api/v1/alarm-rules".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/alarm-rules".into(),
            Some(json!({"name": "no scope"})),
            Some(Permission::ManageAlarmRules),
        ),
        (
            Method::GET,
            "/api/v1/alarm-rules/999999".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::PATCH,
            "/api/v1/alarm-rules/999999".into(),
            Some(json!({"version": 1})),
            Some(Permission::ManageAlarmRules),
        ),
        (
            Method::GET,
            "/api/v1/alarms?state=active".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::GET,
            "/api/v1/alarms/999999".into(),
            None,
            Some(Permission::Read),
        ),
        (
            Method::POST,
            "/api/v1/alarms/999999/acknowledge".into(),
            None,
            Some(Permission::AcknowledgeAlarm),
        ),
        (
            Method::POST,
            "/api/v1/alarms/evaluate".into(),
            None,
            Some(Permission::ManageAlarmRules),
        ),
        (
            Method::GET,
            "/api/v1/audit".into(),
            None,
            Some(Permission::ReadAudit),
        ),
        (
            Method::GET,
            "/api/v1/audit/verify".into(),
            None,
            Some(Permission::ReadAudit),
        ),
    ];
    v.extend(inventory_endpoints(site, wo, n));
    v.extend(telemetry_endpoints());
    v.extend(model_endpoints());
    v
}

/// The model registry (an unknown version: allowed roles get 400/404/409).
fn model_endpoints() -> Vec<(Method, String, Option<Value>, Option<Permission>)> {
    let read = Some(Permission::Read);
    let manage = Some(Permission::ManageModels);
    let target = json!({"asset_class": "wind_turbine"});
    vec![
        (Method::GET, "/api/v1/models".into(), None, read),
        (
            Method::POST,
            "/api/v1/models".into(),
            Some(json!({"metadata": {}, "onnx_base64": "AA=="})),
            manage,
        ),
        (Method::GET, "/api/v1/models/wt/9.9.9".into(), None, read),
        (Method::GET, "/api/v1/models/assignments".into(), None, read),
        (
            Method::PUT,
            "/api/v1/models/assignments".into(),
            Some(json!({"target": target, "model_id": "wt", "version": "9.9.9"})),
            manage,
        ),
        (
            Method::POST,
            "/api/v1/models/assignments/rollback".into(),
            Some(json!({"target": target, "model_id": "wt"})),
            manage,
        ),
        (Method::GET, "/api/v1/models/gateways".into(), None, read),
        (
            Method::GET,
            "/api/v1/models/drift?notice=true".into(),
            None,
            read,
        ),
    ]
}

/// Operations the walk does not cover: public ones, those authenticated by
/// a gateway credential, and logout (it would end the walk's session; the
/// CMMS scenario logs a user out and checks the token is then refused).
const NOT_FOR_USERS: [&str; 6] = [
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/logout",
    "POST /api/v1/ingest",
    "POST /api/v1/gateway/models/sync",
    "GET /api/v1/gateway/models/{model_id}/{version}/{file}",
    "GET /healthz",
];

/// Every operation of the OpenAPI document is in the walk (or listed in
/// [`NOT_FOR_USERS`]): a new endpoint cannot miss its role check.
#[test]
fn the_walk_covers_every_documented_operation() {
    use utoipa::OpenApi;
    let doc = dcmms_cloud::http::ApiDoc::openapi();
    let walked: Vec<(String, Vec<String>)> = endpoints(1, 1, 1, 0)
        .into_iter()
        .map(|(m, uri, _, _)| {
            let path = uri.split('?').next().unwrap_or_default().to_string();
            (m.to_string(), path.split('/').map(str::to_string).collect())
        })
        .collect();
    let mut missing = Vec::new();
    for (path, item) in &doc.paths.paths {
        let template: Vec<&str> = path.split('/').collect();
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (m, present) in methods {
            let op = format!("{m} {path}");
            if !present || NOT_FOR_USERS.contains(&op.as_str()) {
                continue;
            }
            let covered = walked.iter().any(|(wm, segs)| {
                wm == m
                    && segs.len() == template.len()
                    && segs
                        .iter()
                        .zip(&template)
                        .all(|(s, t)| t.starts_with('{') || s == t)
            });
            if !covered {
                missing.push(op);
            }
        }
    }
    assert!(missing.is_empty(), "not in the role walk: {missing:#?}");
    for op in NOT_FOR_USERS {
        let (m, path) = op.split_once(' ').unwrap();
        let item = doc
            .paths
            .paths
            .get(path)
            .unwrap_or_else(|| panic!("{op} is not documented"));
        let present = match m {
            "GET" => item.get.is_some(),
            "POST" => item.post.is_some(),
            _ => false,
        };
        assert!(present, "{op} is not documented");
    }
}

/// The telemetry reads (no telemetry on the walk's database: unknown ids
/// are 404, which still proves the permission was granted).
fn telemetry_endpoints() -> Vec<(Method, String, Option<Value>, Option<Permission>)> {
    let read = Some(Permission::ReadTelemetry);
    [
        "/api/v1/gateways",
        "/api/v1/gateways/walk-gw/completeness?from=0&to=60000",
        "/api/v1/devices",
        "/api/v1/points?gateway_id=walk-gw",
        "/api/v1/points/999999/samples",
        "/api/v1/points/999999/samples?resolution=15m",
    ]
    .into_iter()
    .map(|uri| (Method::GET, uri.to_string(), None, read))
    .collect()
}

/// The parts, stock and cost endpoints. The walk's store is id 1 and its
/// part id 1 (created first on a fresh database by `role_walk`). Bodies
/// that are invalid (quantity 0, an unknown id, a stale version) are
/// refused after the permission check, so allowed roles see 400/404/409.
fn inventory_endpoints(
    site: i64,
    wo: i64,
    n: usize,
) -> Vec<(Method, String, Option<Value>, Option<Permission>)> {
    let (store, part) = (1, 1);
    let read = Some(Permission::Read);
    let inv = Some(Permission::ManageInventory);
    let exec = Some(Permission::ExecuteWorkOrder);
    let edit = Some(Permission::EditWorkOrder);
    vec![
        (Method::GET, "/api/v1/parts".into(), None, read),
        (
            Method::POST,
            "/api/v1/parts".into(),
            Some(
                json!({"part_number": format!("P-{n}"), "name": "Fuse 32 A", "unit": "each", "unit_cost_paise": 4999}),
            ),
            inv,
        ),
        (Method::GET, format!("/api/v1/parts/{part}"), None, read),
        (
            Method::PATCH,
            format!("/api/v1/parts/{part}"),
            Some(json!({"version": 999_999})),
            inv,
        ),
        (Method::GET, "/api/v1/stores".into(), None, read),
        (
            Method::POST,
            "/api/v1/stores".into(),
            Some(json!({"site_id": site, "name": format!("Store {n}")})),
            inv,
        ),
        (Method::GET, format!("/api/v1/stores/{store}"), None, read),
        (
            Method::POST,
            format!("/api/v1/stores/{store}/receipts"),
            Some(json!({"part_id": part, "quantity": 1, "reference": "GRN"})),
            inv,
        ),
        (
            Method::POST,
            format!("/api/v1/stores/{store}/adjustments"),
            Some(json!({"part_id": part, "delta": 0, "reason": "count"})),
            inv,
        ),
        (Method::GET, "/api/v1/stock".into(), None, read),
        (
            Method::GET,
            format!("/api/v1/stores/{store}/stock/{part}"),
            None,
            read,
        ),
        (
            Method::PATCH,
            format!("/api/v1/stores/{store}/stock/{part}"),
            Some(json!({"version": 999_999, "reorder_point": 1})),
            inv,
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/reservations"),
            Some(json!({"store_id": store, "part_id": part, "quantity": 0})),
            exec,
        ),
        (Method::GET, "/api/v1/reservations".into(), None, read),
        (
            Method::GET,
            "/api/v1/reservations/999999".into(),
            None,
            read,
        ),
        (
            Method::POST,
            "/api/v1/reservations/999999/release".into(),
            None,
            exec,
        ),
        (Method::GET, "/api/v1/notifications".into(), None, read),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/time-entries"),
            Some(json!({"minutes": 0, "hourly_rate_paise": 50000})),
            exec,
        ),
        (Method::GET, "/api/v1/time-entries".into(), None, read),
        (
            Method::DELETE,
            "/api/v1/time-entries/999999".into(),
            None,
            exec,
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{wo}/external-costs"),
            Some(json!({"vendor": "", "amount_paise": 1})),
            edit,
        ),
        (Method::GET, "/api/v1/external-costs".into(), None, read),
        (
            Method::DELETE,
            "/api/v1/external-costs/999999".into(),
            None,
            edit,
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{wo}/costs"),
            None,
            read,
        ),
    ]
}

async fn role_walk(ctx: &Ctx) {
    let (_, admin) = ctx.user("root", Role::Admin).await;
    let (_, site) = ctx
        .call(
            Method::POST,
            "/api/v1/sites",
            Some(&admin),
            Some(site_body("WALK")),
        )
        .await;
    let site = site["id"].as_i64().unwrap();
    // The store and part the inventory endpoints use (ids 1 and 1).
    let (s, store) = ctx
        .call(
            Method::POST,
            "/api/v1/stores",
            Some(&admin),
            Some(json!({"site_id": site, "name": "Main store"})),
        )
        .await;
    assert_eq!(
        (s, store["id"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{store}"
    );
    let (s, part) = ctx
        .call(
            Method::POST,
            "/api/v1/parts",
            Some(&admin),
            Some(json!({"part_number": "WALK-1", "name": "Fan", "unit": "each", "unit_cost_paise": 100})),
        )
        .await;
    assert_eq!(
        (s, part["id"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{part}"
    );
    let (_, asset) = ctx
        .call(
            Method::POST,
            "/api/v1/assets",
            Some(&admin),
            Some(json!({"site_id": site, "name": "M", "class": "meter"})),
        )
        .await;
    let asset = asset["id"].as_i64().unwrap();
    let (_, wo) = ctx
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&admin),
            Some(json!({"site_id": site, "kind": "inspection", "title": "t"})),
        )
        .await;
    let wo = wo["id"].as_i64().unwrap();
    let (s, plan) = ctx
        .call(
            Method::POST,
            "/api/v1/pm/plans",
            Some(&admin),
            Some(json!({"site_id": site, "title": "PM", "active": false,
                "schedule": {"type": "calendar", "every": 1, "unit": "month", "anchor_ms": 0}})),
        )
        .await;
    assert_eq!(
        (s, plan["id"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{plan}"
    );
    let mut n = 0;
    let mut checked = 0;
    for role in Role::ALL {
        let (_, token) = ctx
            .user(&format!("walk-{}", role.as_str().replace('_', "-")), role)
            .await;
        for (method, uri, body, perm) in endpoints(site, asset, wo, n) {
            n += 1;
            // Without a token every endpoint is 401.
            let (s, _) = ctx.call(method.clone(), &uri, None, body.clone()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} without a token"
            );
            let (s, b) = ctx.call(method.clone(), &uri, Some(&token), body).await;
            let allowed = perm.is_none_or(|p| allows(role, p));
            if allowed {
                assert!(
                    s != StatusCode::FORBIDDEN
                        && s != StatusCode::UNAUTHORIZED
                        && !s.is_server_error(),
                    "{role} {method} {uri}: {s} {b}"
                );
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {method} {uri}: {b}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, Role::ALL.len() * endpoints(0, 0, 0, 0).len());
}

#[tokio::test]
async fn sqlite_cmms_scenario() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[tokio::test]
async fn sqlite_every_endpoint_for_every_role() {
    let dir = tempfile::tempdir().unwrap();
    role_walk(&Ctx::new(&testing::sqlite_url(dir.path())).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_cmms_scenario() {
    let url = testing::fresh_postgres_database().await.unwrap();
    scenario(&Ctx::new(&url).await).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test]
async fn postgres_every_endpoint_for_every_role() {
    let url = testing::fresh_postgres_database().await.unwrap();
    role_walk(&Ctx::new(&url).await).await;
}

#[tokio::test]
async fn demo_seed_builds_a_living_site_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(&testing::sqlite_url(dir.path())).await;
    assert!(
        dcmms_cloud::seed::seed_demo(&ctx.db, &ctx.caches, 3)
            .await
            .unwrap()
    );
    assert!(
        !dcmms_cloud::seed::seed_demo(&ctx.db, &ctx.caches, 3)
            .await
            .unwrap(),
        "seeds only once"
    );
    let (s, login) = ctx
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "supervisor", "password": dcmms_cloud::seed::DEMO_PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap();
    let (_, inv) = ctx
        .call(
            Method::GET,
            "/api/v1/assets?class=inverter",
            Some(token),
            None,
        )
        .await;
    assert_eq!(inv["items"].as_array().unwrap().len(), 3);
    let (_, strings) = ctx
        .call(
            Method::GET,
            "/api/v1/assets?class=string&limit=1000",
            Some(token),
            None,
        )
        .await;
    assert_eq!(strings["items"].as_array().unwrap().len(), 12);
    let (_, wos) = ctx
        .call(Method::GET, "/api/v1/work-orders", Some(token), None)
        .await;
    let mut statuses: Vec<&str> = wos["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["status"].as_str().unwrap())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["IN_PROGRESS", "REQUESTED", "WAITING"]);

    // The parts catalogue, stocked, with reorder points.
    let (_, stock) = ctx
        .call(Method::GET, "/api/v1/stock?limit=100", Some(token), None)
        .await;
    let stock = stock["items"].as_array().unwrap();
    assert_eq!(stock.len(), 8, "{stock:?}");
    assert!(
        stock
            .iter()
            .all(|r| r["on_hand"].as_i64() > r["reorder_point"].as_i64()
                && r["reorder_point"].as_i64() > Some(0)),
        "{stock:?}"
    );
    // PM plans in the site's time zone; the generator turns them into work
    // orders over the horizon (weekly cleaning ×8 or 9, monthly inverter PM ×1
    // or 2,
    // quarterly transformer inspection; the meter plan has no reading yet).
    let (_, plans) = ctx
        .call(Method::GET, "/api/v1/pm/plans", Some(token), None)
        .await;
    let plans = plans["items"].as_array().unwrap();
    assert_eq!(plans.len(), 4, "{plans:?}");
    assert_eq!(
        plans
            .iter()
            .filter(|p| p["schedule"]["time_zone"] == "Asia/Kolkata")
            .count(),
        3,
        "{plans:?}"
    );
    let report =
        dcmms_cloud::pm::generate::generate(&ctx.db, &ctx.caches, dcmms_cloud::gateways::now_ms())
            .await
            .unwrap();
    assert!((10..=12).contains(&report.generated), "{report:?}");

    // Once the edge has sent inv-01's power, the demo links it to INV-01.
    on_db!(&ctx.db, p => sqlx::query("INSERT INTO gateways (id, name, secret_sha256, created_ms) VALUES ('demo-gw', 'gw', 'x', 0)")
        .execute(p).await.unwrap().rows_affected());
    on_db!(&ctx.db, p => sqlx::query(
        "INSERT INTO points (gateway_id, device, point, unit) VALUES ('demo-gw', 'inv-01', 'ac_power', 'W'), ('demo-gw', 'inv-01', 'dc_power', 'W')")
        .execute(p).await.unwrap().rows_affected());
    assert_eq!(
        dcmms_cloud::seed::link_demo_points(&ctx.db, &ctx.caches)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        dcmms_cloud::seed::link_demo_points(&ctx.db, &ctx.caches)
            .await
            .unwrap(),
        0,
        "idempotent"
    );
    let inv1 = inv["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "INV-01")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (_, links) = ctx
        .call(
            Method::GET,
            &format!("/api/v1/assets/{inv1}/points"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        (
            links[0]["role"].as_str(),
            links[0]["point"].as_str(),
            links.as_array().map(|a| a.len())
        ),
        (Some("ac_power"), Some("ac_power"), Some(1)),
        "{links}"
    );
    assert!(audit::verify(&ctx.db).await.unwrap() > 20);
}
