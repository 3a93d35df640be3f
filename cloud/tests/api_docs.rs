//! `GET /api/docs`: the browsable page reaches every operation and schema of
//! the OpenAPI document, links to the document, and loads nothing from
//! elsewhere (it must work on a plant network without internet).
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use dcmms_cloud::http::docs::{operation_anchor, schema_anchor};
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use dcmms_cloud::{Db, testing};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use tower::ServiceExt;

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String, String) {
    let resp = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, ctype, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The values of `attr="…"` in `html`.
fn attrs<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

#[tokio::test]
async fn the_docs_page_reaches_every_operation_and_schema_offline() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&testing::sqlite_url(dir.path())).await.unwrap();
    let router = app(
        AppState::new(db, Arc::new(CloudMetrics::default())),
        1 << 20,
    );
    let (s, ctype, html) = get(&router, "/api/docs").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let (s, _, spec) = get(&router, "/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    let spec: Value = serde_json::from_str(&spec).unwrap();

    let hrefs: HashSet<&str> = attrs(&html, "href").into_iter().collect();
    let ids: Vec<&str> = attrs(&html, "id");
    let id_set: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), id_set.len(), "every id is unique");
    assert!(hrefs.contains("/api/v1/openapi.json"), "links to the spec");

    // Nothing loaded from elsewhere: no scripts, images or stylesheets by
    // URL, and every link stays on this page or this server.
    for bad in ["<script", " src=", "<link", "@import", "url("] {
        assert!(!html.contains(bad), "the page contains {bad:?}");
    }
    for h in &hrefs {
        assert!(
            h.starts_with('#') || h.starts_with('/'),
            "external link {h}"
        );
    }
    // No dangling in-page link.
    for h in hrefs.iter().filter_map(|h| h.strip_prefix('#')) {
        assert!(id_set.contains(h), "link to missing #{h}");
    }

    // Every operation has its section, linked from the table of contents,
    // with each of its parameters named in it.
    let mut ops = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let anchor = operation_anchor(method, path);
            assert!(
                hrefs.contains(format!("#{anchor}").as_str()),
                "no link to {method} {path}"
            );
            let start = html.find(&format!("id=\"{anchor}\"")).unwrap();
            let section = &html[start..start + html[start..].find("</section>").unwrap()];
            assert!(
                section.contains(&format!("<code>{path}</code>")),
                "{method} {path}"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                // A parameter "in path" must be a `{name}` segment of the path.
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: {name} in path"
                    );
                }
                assert!(
                    section.contains(&format!("<code>{name}</code>")),
                    "{method} {path}: parameter {name}"
                );
            }
            ops += 1;
        }
    }
    assert!(ops > 50, "only {ops} operations in the spec?");
    // Every schema has its section, linked from the table of contents.
    for name in spec["components"]["schemas"].as_object().unwrap().keys() {
        let anchor = schema_anchor(name);
        assert!(
            id_set.contains(anchor.as_str()),
            "no section for schema {name}"
        );
        assert!(
            hrefs.contains(format!("#{anchor}").as_str()),
            "no link to {name}"
        );
    }
    // The telemetry reads are documented as needing a user token.
    let samples = operation_anchor("get", "/api/v1/points/{id}/samples");
    let start = html.find(&format!("id=\"{samples}\"")).unwrap();
    let section = &html[start..start + html[start..].find("</section>").unwrap()];
    assert!(section.contains("<code>user_token</code>"), "{section}");
}
