//! `GET /api/docs`: the OpenAPI document as one browsable HTML page,
//! rendered on the server from the same document `/api/v1/openapi.json`
//! serves. No JavaScript and nothing fetched from elsewhere, so it works
//! on a plant network with no internet (Swagger UI, Redoc, RapiDoc and
//! Scalar all load their scripts from a CDN or download them at build
//! time).
//!
//! The page: a table of contents by tag, then each operation (method,
//! path, summary, description, who may call it, parameters, request body,
//! responses) and every schema with its properties; schema references are
//! links to the schema.

use serde_json::{Map, Value};
use std::fmt::Write;

/// Where the page is served.
pub const DOCS_PATH: &str = "/api/docs";
/// Where the machine-readable document is served (the page links to it).
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The HTML `id` of an operation's section (the table of contents links
/// to `#` + this).
pub fn operation_anchor(method: &str, path: &str) -> String {
    format!("op-{}-{}", method.to_ascii_lowercase(), slug(path))
}

/// The HTML `id` of a schema's section.
pub fn schema_anchor(name: &str) -> String {
    format!("schema-{}", slug(name))
}

fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One operation of the document, in path order then method order.
struct Op<'a> {
    method: &'static str,
    path: &'a str,
    op: &'a Value,
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    ops.push(Op { method, path, op });
                }
            }
        }
    }
    ops
}

fn tag_of(op: &Value) -> String {
    op.get("tags")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(Value::as_str)
        .unwrap_or("other")
        .to_string()
}

/// A schema as a short type expression; references link to the schema.
fn type_html(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#{}\">{}</a>", schema_anchor(name), esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(list) = s.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " &amp; " } else { " | " };
            return list.iter().map(type_html).collect::<Vec<_>>().join(sep);
        }
    }
    let mut t = match s.get("type") {
        Some(Value::String(t)) if t == "array" => {
            format!("[{}]", s.get("items").map_or("any".into(), type_html))
        }
        Some(Value::String(t)) => esc(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(esc)
            .collect::<Vec<_>>()
            .join(" | "),
        _ if s.get("properties").is_some() => "object".into(),
        _ => "any".into(),
    };
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        let _ = write!(t, " ({})", esc(f));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let vals: Vec<String> = e.iter().map(|v| esc(&v.to_string())).collect();
        let _ = write!(t, " one of {}", vals.join(", "));
    }
    t
}

/// A properties table for an object schema (inline or in components).
fn properties_html(out: &mut String, s: &Value) {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        let _ = writeln!(out, "<p>Type: <code>{}</code></p>", type_html(s));
        return;
    };
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str(
        "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>\n",
    );
    for (name, p) in props {
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_html(p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                ""
            },
            esc(text(p, "description"))
        );
    }
    out.push_str("</table>\n");
}

fn content_html(out: &mut String, content: Option<&Value>) {
    let Some(content) = content.and_then(Value::as_object) else {
        return;
    };
    for (ctype, media) in content {
        let _ = write!(out, "<code>{}</code>", esc(ctype));
        if let Some(schema) = media.get("schema") {
            let _ = write!(out, ": <code>{}</code>", type_html(schema));
        }
        out.push(' ');
    }
}

fn operation_html(out: &mut String, o: &Op<'_>) {
    let anchor = operation_anchor(o.method, o.path);
    let _ = writeln!(
        out,
        "<section class=\"op\" id=\"{anchor}\">\n<h3><span class=\"m {m}\">{M}</span> <code>{p}</code></h3>",
        m = o.method,
        M = o.method.to_ascii_uppercase(),
        p = esc(o.path)
    );
    let summary = text(o.op, "summary");
    if !summary.is_empty() {
        let _ = writeln!(out, "<p><b>{}</b></p>", esc(summary));
    }
    let description = text(o.op, "description");
    if !description.is_empty() && description != summary {
        let _ = writeln!(out, "<p>{}</p>", esc(description));
    }
    if let Some(sec) = o.op.get("security").and_then(Value::as_array) {
        let schemes: Vec<String> = sec
            .iter()
            .filter_map(Value::as_object)
            .flat_map(|m| m.keys().map(|k| format!("<code>{}</code>", esc(k))))
            .collect();
        if !schemes.is_empty() {
            let _ = writeln!(out, "<p>Authentication: {}</p>", schemes.join(" or "));
        }
    }
    if let Some(params) = o.op.get("parameters").and_then(Value::as_array)
        && !params.is_empty()
    {
        out.push_str("<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>\n");
        for p in params {
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(text(p, "name")),
                esc(text(p, "in")),
                p.get("schema").map_or("any".into(), type_html),
                if p.get("required").and_then(Value::as_bool) == Some(true) {
                    "yes"
                } else {
                    ""
                },
                esc(text(p, "description"))
            );
        }
        out.push_str("</table>\n");
    }
    if let Some(body) = o.op.get("requestBody") {
        out.push_str("<h4>Request body</h4>\n<p>");
        content_html(out, body.get("content"));
        if body.get("required").and_then(Value::as_bool) == Some(true) {
            out.push_str("(required)");
        }
        out.push_str("</p>\n");
    }
    if let Some(resps) = o.op.get("responses").and_then(Value::as_object) {
        out.push_str("<h4>Responses</h4>\n<table><tr><th>status</th><th>description</th><th>body</th></tr>\n");
        for (status, r) in resps {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>",
                esc(status),
                esc(text(r, "description"))
            );
            content_html(out, r.get("content"));
            out.push_str("</td></tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:70rem;margin:auto;padding:1rem;line-height:1.4}\
table{border-collapse:collapse;margin:.3rem 0 1rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;vertical-align:top}\
.op{border-top:1px solid #999;margin-top:1.5rem}.m{font-weight:bold;padding:0 .4rem;border-radius:3px;color:#fff;background:#555}\
.get{background:#2a7ab0}.post{background:#2e8b57}.patch{background:#b8860b}.put{background:#8b5a2b}.delete{background:#b22222}\
nav ul{columns:2}code{font-size:.95em}";

/// Renders the page from an OpenAPI document (as JSON).
pub fn render(doc: &Value) -> String {
    let info = doc.get("info").unwrap_or(&Value::Null);
    let title = text(info, "title");
    let mut out = String::with_capacity(256 * 1024);
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t} <small>{v}</small></h1>\n<p>{d}</p>\n\
         <p>Machine-readable: <a href=\"{OPENAPI_PATH}\">{OPENAPI_PATH}</a> (OpenAPI {o}). \
         Every endpoint except login, health, metrics and these documents needs \
         <code>Authorization: Bearer &lt;token&gt;</code>: a session token from \
         <code>POST /api/v1/auth/login</code> or an API token; ingest takes a gateway credential.</p>",
        t = esc(title),
        v = esc(text(info, "version")),
        d = esc(text(info, "description")),
        o = esc(text(doc, "openapi")),
    );
    // Group by first tag, tags in the order they first appear.
    let ops = operations(doc);
    let mut tags: Vec<String> = Vec::new();
    for o in &ops {
        let t = tag_of(o.op);
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    tags.sort();
    out.push_str("<nav><h2>Operations</h2>\n");
    for t in &tags {
        let _ = writeln!(
            out,
            "<h3><a href=\"#tag-{}\">{}</a></h3><ul>",
            slug(t),
            esc(t)
        );
        for o in ops.iter().filter(|o| &tag_of(o.op) == t) {
            let _ = writeln!(
                out,
                "<li><a href=\"#{}\"><span class=\"m {}\">{}</span> <code>{}</code></a> {}</li>",
                operation_anchor(o.method, o.path),
                o.method,
                o.method.to_ascii_uppercase(),
                esc(o.path),
                esc(text(o.op, "summary"))
            );
        }
        out.push_str("</ul>\n");
    }
    let empty = Map::new();
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    out.push_str("<h3><a href=\"#schemas\">Schemas</a></h3><ul>\n");
    for name in schemas.keys() {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a></li>",
            schema_anchor(name),
            esc(name)
        );
    }
    out.push_str("</ul></nav>\n");
    for t in &tags {
        let _ = writeln!(out, "<h2 id=\"tag-{}\">{}</h2>", slug(t), esc(t));
        for o in ops.iter().filter(|o| &tag_of(o.op) == t) {
            operation_html(&mut out, o);
        }
    }
    out.push_str("<h2 id=\"schemas\">Schemas</h2>\n");
    for (name, s) in schemas {
        let _ = writeln!(
            out,
            "<section id=\"{}\"><h3>{}</h3>",
            schema_anchor(name),
            esc(name)
        );
        let d = text(s, "description");
        if !d.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", esc(d));
        }
        properties_html(&mut out, s);
        out.push_str("</section>\n");
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_are_plain_and_distinct() {
        assert_eq!(
            operation_anchor("GET", "/api/v1/points/{id}/samples"),
            "op-get-api-v1-points-id-samples"
        );
        assert_ne!(
            operation_anchor("get", "/api/v1/points"),
            operation_anchor("post", "/api/v1/points")
        );
        assert_eq!(schema_anchor("Page_WorkOrder"), "schema-Page_WorkOrder");
    }

    #[test]
    fn text_is_escaped() {
        let doc = serde_json::json!({
            "info": {"title": "<script>alert(1)</script>", "version": "1"},
            "paths": {"/x": {"get": {"summary": "a & b", "responses": {}}}}
        });
        let html = render(&doc);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("a &amp; b"));
    }
}
