//! Demo data: a living solar park for `dcmms-demo`, so a newcomer logs in
//! and finds users of every role, a site with its asset tree (inverters with
//! their strings, transformers, a weather station, the revenue meter), a
//! parts catalogue stocked in the site's store, preventive-maintenance plans,
//! an alarm rule on the inverters' ground-fault bit and work orders in
//! several states. Written through the same stores as the
//! API, so every record is validated and audited.

use crate::alarms::{self, Condition, RuleFields, Scope};
use crate::assets::{self, AssetFields, SiteFields, SiteKind};
use crate::auth::{Principal, Role, users};
use crate::db::{Caches, Db};
use crate::http::problem::AppError;
use crate::inventory::{self, NewPart, NewStore, Receipt, StockSettings};
use crate::on_db;
use crate::pm::{self, PlanFields, PlanKind, schedule::Schedule, schedule::Unit};
use crate::work_orders::{Action, Reason, store};
use serde_json::json;

/// The password of every demo user (the demo listens on localhost only).
pub const DEMO_PASSWORD: &str = "dcmms-demo-password";

/// Demo users: (username, display name, role).
pub const DEMO_USERS: &[(&str, &str, Role)] = &[
    ("admin", "Site administrator", Role::Admin),
    (
        "ops",
        "Priya Menon (operations manager)",
        Role::OperationsManager,
    ),
    (
        "supervisor",
        "Rajesh Choudhary (O&M supervisor)",
        Role::Supervisor,
    ),
    ("tech1", "Suresh Meghwal (technician)", Role::Technician),
    ("tech2", "Anita Bishnoi (technician)", Role::Technician),
    ("auditor", "CEA compliance auditor", Role::Auditor),
    ("installer", "Commissioning engineer", Role::Installer),
];

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seeding {what}: {detail}")]
    Failed { what: String, detail: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn failed(what: &str) -> impl Fn(AppError) -> SeedError + '_ {
    move |e| SeedError::Failed {
        what: what.to_string(),
        detail: format!("{e:?}"),
    }
}

/// Seeds the demo once: does nothing if any user exists. Returns whether it
/// seeded. `inverters` matches the simulated fleet (`inv-01`, `inv-02`, …).
pub async fn seed_demo(db: &Db, caches: &Caches, inverters: usize) -> Result<bool, SeedError> {
    let (n,): (i64,) =
        on_db!(db, p => sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(p).await)?;
    if n > 0 {
        return Ok(false);
    }
    let mut ids = Vec::new();
    for (name, display, role) in DEMO_USERS {
        let u = users::create(
            db,
            caches,
            "system:seed",
            name,
            display,
            *role,
            DEMO_PASSWORD,
        )
        .await
        .map_err(|e| SeedError::Failed {
            what: format!("user {name}"),
            detail: e.to_string(),
        })?;
        // Rate card of the people who log time (₹/h in paise).
        let rate = match role {
            Role::Technician => Some(45_000),
            Role::Supervisor => Some(65_000),
            _ => None,
        };
        if let Some(rate) = rate {
            users::update(
                db,
                caches,
                "system:seed",
                u.id,
                &users::UserUpdate {
                    version: u.version,
                    display_name: None,
                    hourly_rate_paise: Some(rate),
                },
            )
            .await
            .map_err(|e| SeedError::Failed {
                what: format!("rate card of {name}"),
                detail: e.to_string(),
            })?;
        }
        ids.push((u.id, *name, *role));
    }
    let who = |name: &str| {
        ids.iter()
            .find(|(_, n, _)| *n == name)
            .map(|(id, n, role)| Principal {
                user_id: *id,
                username: n.to_string(),
                role: *role,
            })
    };
    let (Some(admin), Some(sup), Some(tech1), Some(tech2)) =
        (who("admin"), who("supervisor"), who("tech1"), who("tech2"))
    else {
        return Err(SeedError::Failed {
            what: "users".into(),
            detail: "a demo user is missing".into(),
        });
    };
    let actor = admin.actor();
    let rated_kw = 100.0;
    let site = assets::create_site(
        db,
        caches,
        &actor,
        &SiteFields {
            code: Some("BHD-04".into()),
            name: Some("Bhadla Solar Park, block 4".into()),
            kind: Some(SiteKind::Solar),
            ac_capacity_kw: Some(rated_kw * inverters.max(1) as f64),
            dc_capacity_kwp: Some(rated_kw * 1.25 * inverters.max(1) as f64),
            latitude: Some(27.54),
            longitude: Some(71.92),
            time_zone: Some("Asia/Kolkata".into()),
            grid_connection_point: Some("Bhadla 400/220 kV PGCIL pooling substation, bay 7".into()),
            version: None,
        },
    )
    .await
    .map_err(failed("site"))?;
    let asset = |name: String,
                 class: &str,
                 parent: Option<i64>,
                 make: &str,
                 model: &str,
                 crit: i64,
                 nameplate: serde_json::Value| AssetFields {
        site_id: Some(site.id),
        parent_id: Some(parent),
        name: Some(name),
        class: Some(class.into()),
        make: Some(make.into()),
        model: Some(model.into()),
        serial: Some(String::new()),
        nameplate: nameplate.as_object().cloned(),
        commissioned_on: Some(Some("2024-03-15".into())),
        criticality: Some(crit),
        tags: Some(vec!["block-4".into()]),
        version: None,
    };
    let tx1 = assets::create_asset(
        db,
        caches,
        &actor,
        &asset(
            "TX-01 inverter duty transformer".into(),
            "transformer",
            None,
            "Siemens",
            "GEAFOL 2.5 MVA",
            5,
            json!({"rated_power_kva": 2500, "hv_kv": 33, "lv_v": 800}),
        ),
    )
    .await
    .map_err(failed("transformer"))?;
    let mut first_inverter = None;
    for i in 0..inverters {
        let inv = assets::create_asset(db, caches, &actor,
            &asset(format!("INV-{:02}", i + 1), "inverter", Some(tx1.id), "SMA", "Sunny Highpower PEAK3 100", 4,
                json!({"rated_power_kw": rated_kw, "max_dc_voltage_v": 1000, "mppt_count": 1, "edge_device": format!("inv-{:02}", i + 1)})))
            .await.map_err(failed("inverter"))?;
        first_inverter.get_or_insert(inv.id);
        for s in 0..4 {
            assets::create_asset(
                db,
                caches,
                &actor,
                &asset(
                    format!("INV-{:02} string {}", i + 1, s + 1),
                    "string",
                    Some(inv.id),
                    "Waaree",
                    "WSMDi-545 × 28",
                    2,
                    json!({"modules": 28, "module_wp": 545}),
                ),
            )
            .await
            .map_err(failed("string"))?;
        }
    }
    assets::create_asset(
        db,
        caches,
        &actor,
        &asset(
            "WS-01 weather station".into(),
            "weather_station",
            None,
            "Kipp & Zonen",
            "SMP10 + RT1",
            3,
            json!({"pyranometer_class": "A"}),
        ),
    )
    .await
    .map_err(failed("weather station"))?;
    assets::create_asset(
        db,
        caches,
        &actor,
        &asset(
            "MTR-01 ABT revenue meter".into(),
            "meter",
            None,
            "Secure Meters",
            "Apex 150",
            5,
            json!({"accuracy_class": "0.2S"}),
        ),
    )
    .await
    .map_err(failed("meter"))?;

    // The site store and its spares: (part number, name, unit, ₹ paise,
    // on hand, reorder point, reorder quantity).
    let store = inventory::create_store(
        db,
        caches,
        &actor,
        &NewStore {
            site_id: site.id,
            name: "BHD-04 O&M store (container 2)".into(),
        },
    )
    .await
    .map_err(failed("store"))?;
    let catalogue: [(&str, &str, &str, i64, i64, i64, i64); 8] = [
        (
            "SMA-FAN-PEAK3",
            "Inverter cabinet fan, Sunny Highpower PEAK3",
            "each",
            1_850_000,
            6,
            2,
            6,
        ),
        (
            "SMA-FLT-PEAK3",
            "Inverter air inlet filter mat",
            "each",
            120_000,
            20,
            8,
            20,
        ),
        (
            "FUSE-DC-20A",
            "PV string fuse 20 A 1500 V gPV",
            "each",
            65_000,
            40,
            12,
            40,
        ),
        (
            "MC4-PAIR",
            "MC4 connector pair, Stäubli EVO 2",
            "each",
            45_000,
            100,
            30,
            100,
        ),
        (
            "SPD-T2-DC",
            "Type 2 DC surge arrester cartridge",
            "each",
            420_000,
            8,
            3,
            8,
        ),
        (
            "TX-SILICA-1KG",
            "Transformer breather silica gel",
            "kg",
            60_000,
            10,
            4,
            10,
        ),
        (
            "TX-OIL-SAMPLE",
            "Transformer oil sample kit (DGA)",
            "each",
            250_000,
            4,
            1,
            4,
        ),
        (
            "CLN-DETERGENT",
            "Module cleaning detergent, pH neutral",
            "l",
            35_000,
            200,
            50,
            200,
        ),
    ];
    for (number, name, unit, cost, on_hand, reorder_point, reorder_qty) in catalogue {
        let part = inventory::create_part(
            db,
            caches,
            &actor,
            &NewPart {
                part_number: number.into(),
                name: name.into(),
                unit: unit.into(),
                unit_cost_paise: cost,
            },
        )
        .await
        .map_err(failed("part"))?;
        let stock = inventory::receive(
            db,
            caches,
            &actor,
            store.id,
            &Receipt {
                part_id: part.id,
                quantity: on_hand,
                reference: "opening stock".into(),
            },
        )
        .await
        .map_err(failed("stock"))?;
        inventory::update_settings(
            db,
            caches,
            &actor,
            store.id,
            part.id,
            &StockSettings {
                version: stock.version,
                reorder_point: Some(reorder_point),
                reorder_qty: Some(reorder_qty),
            },
        )
        .await
        .map_err(failed("reorder point"))?;
    }

    // PM plans, in the site's time zone, anchored at the next local 06:00.
    let now = crate::gateways::now_ms();
    let ist = 330 * 60_000;
    let day = 86_400_000;
    let anchor = (now + ist).div_euclid(day) * day + day + 6 * 3_600_000 - ist;
    let tz = Some("Asia/Kolkata".to_string());
    let plans = [
        (
            "Inverter PM: air filters, fans, DC terminal torque",
            "Clean or replace inlet filter mats (SMA-FLT-PEAK3); check both cabinet fans run; re-torque DC terminals to 6 Nm; thermal scan of AC terminals.",
            first_inverter,
            PlanKind::Preventive,
            Schedule::Calendar {
                every: 1,
                unit: Unit::Month,
                anchor_ms: anchor,
                utc_offset_minutes: 0,
                time_zone: tz.clone(),
            },
        ),
        (
            "Module cleaning, block 4",
            "Dry brush then wet clean with pH-neutral detergent before 09:00; log soiling loss estimate before and after.",
            None,
            PlanKind::Preventive,
            Schedule::Rrule {
                rrule: "FREQ=WEEKLY;BYDAY=MO,TH".into(),
                anchor_ms: anchor,
                utc_offset_minutes: 0,
                time_zone: tz.clone(),
            },
        ),
        (
            "Transformer TX-01: oil sample (DGA) and breather",
            "Take an oil sample for dissolved gas analysis; replace breather silica gel if more than two-thirds pink.",
            Some(tx1.id),
            PlanKind::Inspection,
            Schedule::Calendar {
                every: 3,
                unit: Unit::Month,
                anchor_ms: anchor,
                utc_offset_minutes: 0,
                time_zone: tz.clone(),
            },
        ),
        (
            "INV-01 cabinet fan replacement",
            "Replace both cabinet fans (SMA-FAN-PEAK3) every 20,000 running hours.",
            first_inverter,
            PlanKind::Preventive,
            Schedule::Meter {
                role: "running_hours".into(),
                every: 20_000.0,
                start_value: 0.0,
            },
        ),
    ];
    for (title, description, asset_id, kind, schedule) in plans {
        pm::create_plan(
            db,
            caches,
            &sup,
            &PlanFields {
                site_id: Some(site.id),
                asset_id,
                title: Some(title.into()),
                description: Some(description.into()),
                kind: Some(kind),
                schedule: Some(schedule),
                ..PlanFields::default()
            },
        )
        .await
        .map_err(failed("PM plan"))?;
    }

    // Work orders in several states, as a week of operations leaves them.
    let inv = first_inverter;
    let new = |kind, title: &str, priority, assignee: Option<i64>| store::NewWorkOrder {
        site_id: site.id,
        asset_id: inv,
        kind,
        title: title.into(),
        description: String::new(),
        priority: Some(priority),
        assignee_id: assignee,
        due_ms: None,
    };
    use store::Kind;
    let w1 = store::create(
        db,
        caches,
        &tech1,
        &new(
            Kind::Corrective,
            "INV-01 derates at noon: cabinet over-temperature",
            2,
            Some(tech1.user_id),
        ),
    )
    .await
    .map_err(failed("work order"))?;
    let w1 = store::apply(db, caches, &sup, w1.id, w1.version, Action::Approve, "")
        .await
        .map_err(failed("approve"))?;
    let w1 = store::apply(
        db,
        caches,
        &sup,
        w1.id,
        w1.version,
        Action::Schedule,
        "fan spares in store",
    )
    .await
    .map_err(failed("schedule"))?;
    store::apply(db, caches, &tech1, w1.id, w1.version, Action::Start, "")
        .await
        .map_err(failed("start"))?;
    let w2 = store::create(
        db,
        caches,
        &sup,
        &new(
            Kind::Inspection,
            "Thermographic survey of string combiner boxes",
            3,
            Some(tech2.user_id),
        ),
    )
    .await
    .map_err(failed("work order"))?;
    let w2 = store::apply(db, caches, &sup, w2.id, w2.version, Action::Approve, "")
        .await
        .map_err(failed("approve"))?;
    store::apply(
        db,
        caches,
        &sup,
        w2.id,
        w2.version,
        Action::Wait(Reason::Permit),
        "hot-work permit pending",
    )
    .await
    .map_err(failed("wait"))?;
    store::create(
        db,
        caches,
        &tech2,
        &new(
            Kind::Corrective,
            "Soiling on INV-01 strings after dust storm",
            3,
            None,
        ),
    )
    .await
    .map_err(failed("work order"))?;
    // The inverter's own ground-fault report (SunSpec Evt1 bit 0): the
    // insulation faults its anomaly model cannot see at night.
    alarms::create_rule(
        db,
        caches,
        &admin,
        &RuleFields {
            name: Some("Inverter ground fault (Evt1 bit 0)".into()),
            scope: Some(Scope::AssetClass {
                class: "inverter".into(),
                role: "event_flags".into(),
            }),
            condition: Some(Condition::BitMask { mask: 1, for_s: 0 }),
            severity: Some(1),
            auto_work_order: Some(true),
            ..Default::default()
        },
    )
    .await
    .map_err(failed("alarm rule"))?;
    Ok(true)
}

/// The edge points (SunSpec model 103 names) the demo links to each
/// inverter, with their role: power for the meters, event flags for the
/// ground-fault rule.
pub const DEMO_POINT_ROLES: [&str; 2] = ["ac_power", "event_flags"];

/// Links each demo inverter's points of [`DEMO_POINT_ROLES`] to its asset
/// (the role is the point's name) once the edge has sent them, so the
/// inverter's meters (running hours, energy; docs/specs/meters.md), its
/// fan-replacement plan and its ground-fault rule have data. Idempotent;
/// returns how many links it made.
pub async fn link_demo_points(db: &Db, caches: &Caches) -> Result<usize, SeedError> {
    let mut n = 0;
    for role in DEMO_POINT_ROLES {
        let pairs: Vec<(i64, i64)> = on_db!(db, p => sqlx::query_as(
            "SELECT a.id, p.id FROM assets a JOIN points p ON p.device = LOWER(a.name) AND p.point = $1 \
             WHERE a.class = 'inverter' \
               AND NOT EXISTS (SELECT 1 FROM asset_points ap WHERE ap.asset_id = a.id AND ap.role = $1) \
             ORDER BY a.id")
            .bind(role).fetch_all(p).await)?;
        for (asset, point) in pairs {
            assets::link_point(db, caches, "system:seed", asset, point, role)
                .await
                .map_err(failed("point link"))?;
            n += 1;
        }
    }
    Ok(n)
}
