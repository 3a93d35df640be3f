//! Sites and the asset hierarchy (site → asset → component, any depth),
//! with links from assets to telemetry points.
//!
//! - this file: the records, their validation and the store;
//! - [`handlers`]: `/api/v1/sites…` and `/api/v1/assets…`;
//! - [`meters`]: running hours and energy, read or derived from telemetry.
//!
//! Every update carries the `version` the client read; the store bumps it
//! in the same statement that checks it, so two concurrent editors cannot
//! both win. Every change is written to the audit log in its transaction.

pub mod handlers;
pub mod meters;

use crate::audit;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::params::{Bind, Filters};
use crate::http::problem::AppError;
use crate::{bind_all, on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SiteKind {
    Solar,
    Wind,
    Bess,
    Hybrid,
}

impl SiteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SiteKind::Solar => "solar",
            SiteKind::Wind => "wind",
            SiteKind::Bess => "bess",
            SiteKind::Hybrid => "hybrid",
        }
    }
    fn parse(s: &str) -> Option<SiteKind> {
        [
            SiteKind::Solar,
            SiteKind::Wind,
            SiteKind::Bess,
            SiteKind::Hybrid,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A plant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Site {
    pub id: i64,
    /// Short unique code, e.g. `BHD-01`.
    pub code: String,
    pub name: String,
    pub kind: SiteKind,
    pub ac_capacity_kw: f64,
    pub dc_capacity_kwp: Option<f64>,
    pub latitude: f64,
    pub longitude: f64,
    /// IANA time zone, e.g. `Asia/Kolkata`.
    pub time_zone: String,
    /// Substation / feeder the plant exports to.
    pub grid_connection_point: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// The editable fields of a site (create: all required but `dc_capacity_kwp`).
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SiteFields {
    pub code: Option<String>,
    pub name: Option<String>,
    pub kind: Option<SiteKind>,
    pub ac_capacity_kw: Option<f64>,
    pub dc_capacity_kwp: Option<f64>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub time_zone: Option<String>,
    pub grid_connection_point: Option<String>,
    /// Required on update: the version you read.
    pub version: Option<i64>,
}

/// What kind of equipment an asset is.
pub const ASSET_CLASSES: &[&str] = &[
    "inverter",
    "string",
    "combiner_box",
    "transformer",
    "switchgear",
    "meter",
    "weather_station",
    "tracker",
    "turbine",
    "gearbox",
    "generator",
    "blade",
    "battery_rack",
    "battery_module",
    "pcs",
    "hvac",
    "scada",
    "other",
];

/// A piece of equipment, or a component of one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Asset {
    pub id: i64,
    pub site_id: i64,
    /// The asset this is a component of; none = directly under the site.
    pub parent_id: Option<i64>,
    pub name: String,
    /// One of [`ASSET_CLASSES`].
    pub class: String,
    pub make: String,
    pub model: String,
    pub serial: String,
    /// Nameplate ratings, e.g. `{"rated_power_kw": 100, "rated_voltage_v": 800}`.
    #[schema(value_type = Object)]
    pub nameplate: serde_json::Map<String, serde_json::Value>,
    /// `YYYY-MM-DD`.
    pub commissioned_on: Option<String>,
    /// 1 (low) to 5 (plant-critical).
    pub criticality: i64,
    pub tags: Vec<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AssetFields {
    pub site_id: Option<i64>,
    /// `null` moves the asset directly under its site.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub parent_id: Option<Option<i64>>,
    pub name: Option<String>,
    pub class: Option<String>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub nameplate: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub commissioned_on: Option<Option<String>>,
    pub criticality: Option<i64>,
    pub tags: Option<Vec<String>>,
    /// Required on update: the version you read.
    pub version: Option<i64>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`) in a PATCH body.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A required text field of 1 to `max` characters (not all blank).
pub(crate) fn text(field: &str, v: &str, max: usize) -> Result<(), AppError> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(AppError::bad_field(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s[..4].parse::<u16>().is_ok()
        && s[5..7].parse::<u8>().is_ok_and(|m| (1..=12).contains(&m))
        && s[8..].parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
}

impl Site {
    fn apply(&mut self, f: &SiteFields) {
        macro_rules! set {
            ($($name:ident),*) => { $( if let Some(v) = &f.$name { self.$name = v.clone(); } )* };
        }
        set!(
            code,
            name,
            kind,
            ac_capacity_kw,
            latitude,
            longitude,
            time_zone,
            grid_connection_point
        );
        if let Some(v) = f.dc_capacity_kwp {
            self.dc_capacity_kwp = Some(v);
        }
    }

    fn validate(&self) -> Result<(), AppError> {
        text("code", &self.code, 32)?;
        text("name", &self.name, 200)?;
        text("grid_connection_point", &self.grid_connection_point, 200)?;
        if !(self.ac_capacity_kw.is_finite() && self.ac_capacity_kw > 0.0) {
            return Err(AppError::bad_field(
                "ac_capacity_kw",
                "must be a positive number of kW",
            ));
        }
        if let Some(dc) = self.dc_capacity_kwp
            && !(dc.is_finite() && dc > 0.0)
        {
            return Err(AppError::bad_field(
                "dc_capacity_kwp",
                "must be a positive number of kWp",
            ));
        }
        if !(-90.0..=90.0).contains(&self.latitude) {
            return Err(AppError::bad_field(
                "latitude",
                "must be between -90 and 90",
            ));
        }
        if !(-180.0..=180.0).contains(&self.longitude) {
            return Err(AppError::bad_field(
                "longitude",
                "must be between -180 and 180",
            ));
        }
        let tz = &self.time_zone;
        if !(tz == "UTC"
            || (tz.contains('/')
                && tz.len() <= 64
                && tz
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))))
        {
            return Err(AppError::bad_field(
                "time_zone",
                format!("{tz:?} is not an IANA time zone such as Asia/Kolkata"),
            ));
        }
        Ok(())
    }
}

impl Asset {
    fn validate(&self) -> Result<(), AppError> {
        text("name", &self.name, 200)?;
        if !ASSET_CLASSES.contains(&self.class.as_str()) {
            return Err(AppError::bad_field(
                "class",
                format!("{:?}: one of {}", self.class, ASSET_CLASSES.join(", ")),
            ));
        }
        for (f, v) in [
            ("make", &self.make),
            ("model", &self.model),
            ("serial", &self.serial),
        ] {
            if v.chars().count() > 200 {
                return Err(AppError::bad_field(f, "at most 200 characters"));
            }
        }
        if let Some(d) = &self.commissioned_on
            && !valid_date(d)
        {
            return Err(AppError::bad_field(
                "commissioned_on",
                format!("{d:?} is not YYYY-MM-DD"),
            ));
        }
        if !(1..=5).contains(&self.criticality) {
            return Err(AppError::bad_field(
                "criticality",
                "must be 1 (low) to 5 (plant-critical)",
            ));
        }
        if self.tags.len() > 50
            || self
                .tags
                .iter()
                .any(|t| t.trim().is_empty() || t.len() > 64)
        {
            return Err(AppError::bad_field(
                "tags",
                "at most 50 tags of 1 to 64 characters",
            ));
        }
        Ok(())
    }
}

type SiteRow = (
    i64,
    String,
    String,
    String,
    f64,
    Option<f64>,
    f64,
    f64,
    String,
    String,
    i64,
    i64,
    i64,
);
const SITE_COLS: &str = "id, code, name, kind, ac_capacity_kw, dc_capacity_kwp, latitude, longitude, time_zone, grid_connection_point, created_ms, updated_ms, version";

fn site_of(r: SiteRow) -> Result<Site, AppError> {
    let kind = SiteKind::parse(&r.3).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("site {} has unknown kind {:?}", r.0, r.3))
    })?;
    Ok(Site {
        id: r.0,
        code: r.1,
        name: r.2,
        kind,
        ac_capacity_kw: r.4,
        dc_capacity_kwp: r.5,
        latitude: r.6,
        longitude: r.7,
        time_zone: r.8,
        grid_connection_point: r.9,
        created_ms: r.10,
        updated_ms: r.11,
        version: r.12,
    })
}

type AssetRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    i64,
    i64,
    i64,
);
const ASSET_COLS: &str = "id, site_id, parent_id, name, class, make, model, serial, nameplate, commissioned_on, criticality, tags, created_ms, updated_ms, version";

fn asset_of(r: AssetRow) -> Asset {
    Asset {
        id: r.0,
        site_id: r.1,
        parent_id: r.2,
        name: r.3,
        class: r.4,
        make: r.5,
        model: r.6,
        serial: r.7,
        nameplate: serde_json::from_str(&r.8).unwrap_or_default(),
        commissioned_on: r.9,
        criticality: r.10,
        tags: serde_json::from_str(&r.11).unwrap_or_default(),
        created_ms: r.12,
        updated_ms: r.13,
        version: r.14,
    }
}

pub async fn get_site(db: &Db, id: i64) -> Result<Option<Site>, AppError> {
    let sql = format!("SELECT {SITE_COLS} FROM sites WHERE id = $1");
    let r: Option<SiteRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    r.map(site_of).transpose()
}

async fn site_in_tx(tx: &mut WriteTx<'_>, id: i64) -> Result<Option<Site>, AppError> {
    let sql = format!("SELECT {SITE_COLS} FROM sites WHERE id = $1");
    let r: Option<SiteRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    r.map(site_of).transpose()
}

pub(crate) fn conflict_if_duplicate(e: sqlx::Error, field: &str) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => AppError::Conflict {
            kind: "duplicate",
            detail: format!("another record has this {field}"),
            field: Some(field.into()),
        },
        _ => e.into(),
    }
}

pub async fn create_site(
    db: &Db,
    caches: &Caches,
    actor: &str,
    f: &SiteFields,
) -> Result<Site, AppError> {
    let req = |name: &str, v: bool| {
        if v {
            Ok(())
        } else {
            Err(AppError::bad_field(name, "missing"))
        }
    };
    req("code", f.code.is_some())?;
    req("name", f.name.is_some())?;
    req("kind", f.kind.is_some())?;
    req("ac_capacity_kw", f.ac_capacity_kw.is_some())?;
    req("latitude", f.latitude.is_some())?;
    req("longitude", f.longitude.is_some())?;
    req("time_zone", f.time_zone.is_some())?;
    req("grid_connection_point", f.grid_connection_point.is_some())?;
    if f.version.is_some() {
        return Err(AppError::bad_field(
            "version",
            "is set by the server on create",
        ));
    }
    let now = now_ms();
    let mut s = Site {
        id: 0,
        code: String::new(),
        name: String::new(),
        kind: SiteKind::Solar,
        ac_capacity_kw: 0.0,
        dc_capacity_kwp: None,
        latitude: 0.0,
        longitude: 0.0,
        time_zone: String::new(),
        grid_connection_point: String::new(),
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    s.apply(f);
    s.validate()?;
    let mut tx = db.write(caches).await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO sites (code, name, kind, ac_capacity_kw, dc_capacity_kwp, latitude, longitude, time_zone, grid_connection_point, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1) RETURNING id")
        .bind(&s.code).bind(&s.name).bind(s.kind.as_str()).bind(s.ac_capacity_kw).bind(s.dc_capacity_kwp)
        .bind(s.latitude).bind(s.longitude).bind(&s.time_zone).bind(&s.grid_connection_point).bind(now)
        .fetch_one(c).await).map_err(|e| conflict_if_duplicate(e, "code"))?;
    s.id = id;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: "create",
            entity: "site",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&s).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

pub async fn update_site(
    db: &Db,
    caches: &Caches,
    actor: &str,
    id: i64,
    f: &SiteFields,
) -> Result<Site, AppError> {
    let Some(sent) = f.version else {
        return Err(AppError::bad_field(
            "version",
            "missing: send the version you read",
        ));
    };
    let mut tx = db.write(caches).await?;
    let before = site_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("site", id))?;
    if before.version != sent {
        return Err(AppError::stale(sent, before.version));
    }
    let mut s = before.clone();
    s.apply(f);
    s.validate()?;
    s.version += 1;
    s.updated_ms = now_ms();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sites SET code = $1, name = $2, kind = $3, ac_capacity_kw = $4, dc_capacity_kwp = $5, latitude = $6, \
         longitude = $7, time_zone = $8, grid_connection_point = $9, updated_ms = $10, version = version + 1 \
         WHERE id = $11 AND version = $12")
        .bind(&s.code).bind(&s.name).bind(s.kind.as_str()).bind(s.ac_capacity_kw).bind(s.dc_capacity_kwp)
        .bind(s.latitude).bind(s.longitude).bind(&s.time_zone).bind(&s.grid_connection_point).bind(s.updated_ms)
        .bind(id).bind(sent).execute(c).await.map(|r| r.rows_affected())).map_err(|e| conflict_if_duplicate(e, "code"))?;
    if n != 1 {
        return Err(AppError::stale(sent, sent + 1));
    }
    audit::record(
        &mut tx,
        s.updated_ms,
        audit::Change {
            actor,
            action: "update",
            entity: "site",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&s).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

pub async fn list_sites(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<Site>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {SITE_COLS} FROM sites{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let rows: Vec<SiteRow> = on_db!(db, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await)?;
    rows.into_iter().map(site_of).collect()
}

pub async fn get_asset(db: &Db, id: i64) -> Result<Option<Asset>, AppError> {
    let sql = format!("SELECT {ASSET_COLS} FROM assets WHERE id = $1");
    let r: Option<AssetRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    Ok(r.map(asset_of))
}

async fn asset_in_tx(tx: &mut WriteTx<'_>, id: i64) -> Result<Option<Asset>, AppError> {
    let sql = format!("SELECT {ASSET_COLS} FROM assets WHERE id = $1");
    let r: Option<AssetRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    Ok(r.map(asset_of))
}

impl Asset {
    fn apply(&mut self, f: &AssetFields) {
        macro_rules! set {
            ($($name:ident),*) => { $( if let Some(v) = &f.$name { self.$name = v.clone(); } )* };
        }
        set!(
            site_id,
            parent_id,
            name,
            class,
            make,
            model,
            serial,
            nameplate,
            commissioned_on,
            criticality,
            tags
        );
    }
}

/// Checks the parent: same site, and not the asset itself or one of its
/// descendants (which would make a cycle).
async fn check_parent(tx: &mut WriteTx<'_>, a: &Asset) -> Result<(), AppError> {
    if site_in_tx(tx, a.site_id).await?.is_none() {
        return Err(AppError::bad_field(
            "site_id",
            format!("no site with id {}", a.site_id),
        ));
    }
    let mut next = a.parent_id;
    let mut depth = 0;
    while let Some(pid) = next {
        if pid == a.id {
            return Err(AppError::bad_field(
                "parent_id",
                "an asset cannot be its own ancestor",
            ));
        }
        let Some(p) = asset_in_tx(tx, pid).await? else {
            return Err(AppError::bad_field(
                "parent_id",
                format!("no asset with id {pid}"),
            ));
        };
        if depth == 0 && p.site_id != a.site_id {
            return Err(AppError::bad_field(
                "parent_id",
                format!("asset {pid} belongs to another site"),
            ));
        }
        depth += 1;
        if depth > 64 {
            return Err(AppError::bad_field(
                "parent_id",
                "hierarchy deeper than 64 levels",
            ));
        }
        next = p.parent_id;
    }
    Ok(())
}

pub async fn create_asset(
    db: &Db,
    caches: &Caches,
    actor: &str,
    f: &AssetFields,
) -> Result<Asset, AppError> {
    let Some(site_id) = f.site_id else {
        return Err(AppError::bad_field("site_id", "missing"));
    };
    if f.name.is_none() {
        return Err(AppError::bad_field("name", "missing"));
    }
    if f.class.is_none() {
        return Err(AppError::bad_field("class", "missing"));
    }
    if f.version.is_some() {
        return Err(AppError::bad_field(
            "version",
            "is set by the server on create",
        ));
    }
    let now = now_ms();
    let mut a = Asset {
        id: 0,
        site_id,
        parent_id: None,
        name: String::new(),
        class: String::new(),
        make: String::new(),
        model: String::new(),
        serial: String::new(),
        nameplate: Default::default(),
        commissioned_on: None,
        criticality: 3,
        tags: Vec::new(),
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    a.apply(f);
    a.validate()?;
    let mut tx = db.write(caches).await?;
    check_parent(&mut tx, &a).await?;
    let nameplate = serde_json::Value::Object(a.nameplate.clone()).to_string();
    let tags = serde_json::to_string(&a.tags).unwrap_or_else(|_| "[]".into());
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO assets (site_id, parent_id, name, class, make, model, serial, nameplate, commissioned_on, criticality, tags, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1) RETURNING id")
        .bind(a.site_id).bind(a.parent_id).bind(&a.name).bind(&a.class).bind(&a.make).bind(&a.model)
        .bind(&a.serial).bind(&nameplate).bind(&a.commissioned_on).bind(a.criticality).bind(&tags).bind(now)
        .fetch_one(c).await)?;
    a.id = id;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: "create",
            entity: "asset",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&a).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(a)
}

pub async fn update_asset(
    db: &Db,
    caches: &Caches,
    actor: &str,
    id: i64,
    f: &AssetFields,
) -> Result<Asset, AppError> {
    let Some(sent) = f.version else {
        return Err(AppError::bad_field(
            "version",
            "missing: send the version you read",
        ));
    };
    let mut tx = db.write(caches).await?;
    let before = asset_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("asset", id))?;
    if before.version != sent {
        return Err(AppError::stale(sent, before.version));
    }
    let mut a = before.clone();
    a.apply(f);
    a.validate()?;
    if a.site_id != before.site_id || a.parent_id != before.parent_id {
        check_parent(&mut tx, &a).await?;
    }
    a.version += 1;
    a.updated_ms = now_ms();
    let nameplate = serde_json::Value::Object(a.nameplate.clone()).to_string();
    let tags = serde_json::to_string(&a.tags).unwrap_or_else(|_| "[]".into());
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE assets SET site_id = $1, parent_id = $2, name = $3, class = $4, make = $5, model = $6, serial = $7, \
         nameplate = $8, commissioned_on = $9, criticality = $10, tags = $11, updated_ms = $12, version = version + 1 \
         WHERE id = $13 AND version = $14")
        .bind(a.site_id).bind(a.parent_id).bind(&a.name).bind(&a.class).bind(&a.make).bind(&a.model)
        .bind(&a.serial).bind(&nameplate).bind(&a.commissioned_on).bind(a.criticality).bind(&tags)
        .bind(a.updated_ms).bind(id).bind(sent).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(sent, sent + 1));
    }
    audit::record(
        &mut tx,
        a.updated_ms,
        audit::Change {
            actor,
            action: "update",
            entity: "asset",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&a).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(a)
}

pub async fn list_assets(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<Asset>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {ASSET_COLS} FROM assets{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let rows: Vec<AssetRow> = on_db!(db, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows.into_iter().map(asset_of).collect())
}

/// A telemetry point linked to an asset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AssetPoint {
    pub point_id: i64,
    /// What the point measures for this asset: `ac_power`, `running_hours`, …
    pub role: String,
    pub gateway_id: String,
    pub device: String,
    pub point: String,
    pub unit: String,
}

pub async fn link_point(
    db: &Db,
    caches: &Caches,
    actor: &str,
    asset_id: i64,
    point_id: i64,
    role: &str,
) -> Result<AssetPoint, AppError> {
    text("role", role, 64)?;
    let mut tx = db.write(caches).await?;
    if asset_in_tx(&mut tx, asset_id).await?.is_none() {
        return Err(AppError::not_found("asset", asset_id));
    }
    let p: Option<(String, String, String, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT gateway_id, device, point, unit FROM points WHERE id = $1").bind(point_id).fetch_optional(c).await)?;
    let Some((gateway_id, device, point, unit)) = p else {
        return Err(AppError::bad_field(
            "point_id",
            format!("no telemetry point with id {point_id}"),
        ));
    };
    on_tx!(tx, c => sqlx::query("INSERT INTO asset_points (asset_id, point_id, role) VALUES ($1, $2, $3)")
        .bind(asset_id).bind(point_id).bind(role).execute(c).await.map(|_| ()))
        .map_err(|e| conflict_if_duplicate(e, "point_id"))?;
    let link = AssetPoint {
        point_id,
        role: role.to_string(),
        gateway_id,
        device,
        point,
        unit,
    };
    audit::record(
        &mut tx,
        now_ms(),
        audit::Change {
            actor,
            action: "link_point",
            entity: "asset",
            entity_id: &asset_id.to_string(),
            before: None,
            after: serde_json::to_value(&link).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(link)
}

pub async fn asset_points(db: &Db, asset_id: i64) -> Result<Vec<AssetPoint>, AppError> {
    let rows: Vec<(i64, String, String, String, String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT ap.point_id, ap.role, p.gateway_id, p.device, p.point, p.unit FROM asset_points ap \
         JOIN points p ON p.id = ap.point_id WHERE ap.asset_id = $1 ORDER BY ap.point_id")
        .bind(asset_id).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(
            |(point_id, role, gateway_id, device, point, unit)| AssetPoint {
                point_id,
                role,
                gateway_id,
                device,
                point,
                unit,
            },
        )
        .collect())
}

/// Filters for the asset list, from query parameters.
pub fn asset_filters(site_id: Option<i64>, parent_id: Option<i64>, class: Option<&str>) -> Filters {
    let mut f = Filters::default();
    f.eq("site_id", site_id.map(Bind::Int));
    f.eq("parent_id", parent_id.map(Bind::Int));
    f.eq("class", class.map(|c| Bind::Text(c.to_string())));
    f
}
