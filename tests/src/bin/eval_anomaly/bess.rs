//! `dcmms-eval-anomaly --asset-class bess`: the BESS rack model
//! (`bess-rack-ae`) against the rack fault physics
//! (`dcmms_simulators::bess::faults`) of racks the training never saw.
//!
//! Every run is the rack of seed S (as `dcmms-sim dataset --asset-class
//! bess`), its seven roles fed to the edge's detector at the model's sample
//! period (10 s). Training used seeds 1–50; fault runs here use
//! 5000 + 100 × kind + k, fault-free ones 9000 + a; days spread over 2026.
//!
//! - Per fault type (`cell_imbalance`, `hot_rack`): `--injections` runs,
//!   onset at any time of day (a day spread over 2026, 00:07 local plus
//!   k × 1433 / n min), the fault stays. Each run starts 2 hours before onset (the
//!   30-minute window fills, then 90 minutes are scored before onset) and
//!   ends at the detection or 48 hours after onset. Detection = the first
//!   anomaly raised at or after onset. Recall within 15 and 60 minutes of
//!   onset, median and p95 time to detect, pre-onset alarms, the top
//!   feature, and for each miss the rack current and SoC in the 15 minutes
//!   after onset.
//! - Both faults need current to show (I·R of the weak cell, I²R heat), and
//!   the rack rests most of the day; so the same runs are also measured from
//!   the *first exposure*: the first row at or after onset with
//!   |current| ≥ 20 A. Recall within 15 minutes of it, median and p95 time
//!   to detect from it, and detections before it.
//! - Fault-free: `--assets` racks × `--days` days after 2 hours that fill
//!   the window; every raise is a false alarm.

use super::{Args, MIN, parallel, pct, print_false_alarms, print_model};
use anyhow::{Result, bail};
use dcmms_edge::anomaly::detector::{AssetWindow, Hysteresis, score_window};
use dcmms_edge::anomaly::features::FeatureSet;
use dcmms_edge::anomaly::model::Model;
use dcmms_shared::{AnomalyEvent, AnomalyKind, Quality};
use dcmms_simulators::bess::RackModel;
use dcmms_simulators::bess::faults::{BessFault, BessFaultKind};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z.
const YEAR0: i64 = 1_767_225_600_000;
/// Local midnight (UTC+05:30) of 2026-01-01.
const LOCAL0: i64 = YEAR0 - 19_800_000;
const WARM_UP: i64 = 2 * HOUR;
const HORIZON: i64 = 48 * HOUR;
/// Current from which a row counts as exposure, A.
const EXPOSED_A: f64 = 20.0;

/// Runs the edge's detector over `[from, to)` at the model's sample
/// period; `on_row` sees every reading, `on_event` every event; stops
/// early when `on_event` breaks.
fn run(
    model: &Model,
    rack: &RackModel,
    from: i64,
    to: i64,
    on_row: &mut dyn FnMut(&dcmms_simulators::bess::RackReading),
    on_event: &mut dyn FnMut(&AnomalyEvent) -> ControlFlow<()>,
) -> Result<()> {
    let w = model.meta.window;
    let period = i64::try_from(w.sample_period_ms)?.max(1);
    let mut aw = AssetWindow::new(7);
    let mut h = Hysteresis::default();
    let mut windows = Vec::new();
    for r in rack.readings(from, to, period) {
        on_row(&r);
        for (role, x) in r.roles().iter().enumerate() {
            aw.push(
                role,
                r.ts_ms,
                *x,
                Quality::Good,
                w,
                model.set,
                &model.params,
                &mut |x| windows.push(x),
            );
        }
        for x in std::mem::take(&mut windows) {
            if let (_, Some(e)) = score_window(model, "eval", &mut h, &x)?
                && on_event(&e).is_break()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn kind_index(kind: BessFaultKind) -> u64 {
    BessFaultKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as u64
}

/// Onset of injection `k` of `n`: a day spread over 2026, 00:07 local
/// plus k × 1433 / n minutes (spread over the day).
fn onset_of(kind: u64, k: u64, n: u64) -> i64 {
    let day = (k * 365 / n.max(1) + 3 * kind) % 365;
    let minutes = 7 + (k * 1433 / n.max(1)) % 1440;
    LOCAL0 + day as i64 * DAY + minutes as i64 * MIN
}

#[derive(Debug, Clone, Default)]
struct Injection {
    /// From onset to the end of the raising window.
    detect_ms: Option<i64>,
    /// From onset to the first row with |current| ≥ 20 A.
    exposure_ms: Option<i64>,
    pre_onset_alarms: u32,
    top: Option<String>,
    /// The feature the summary names (the largest non-context one).
    named: Option<String>,
    summary: Option<String>,
    current_after: f64,
    soc_after: f64,
}

fn inject(model: &Model, kind: BessFaultKind, k: u64, n: u64) -> Result<Injection> {
    let onset = onset_of(kind_index(kind), k, n);
    let rack = RackModel::new(5000 + 100 * kind_index(kind) + k).with_faults(vec![BessFault {
        kind,
        start_ms: onset,
        end_ms: None,
    }]);
    let mut out = Injection::default();
    let (mut cur, mut soc, mut rows) = (0.0, 0.0, 0.0);
    run(
        model,
        &rack,
        onset - WARM_UP,
        onset + HORIZON,
        &mut |r| {
            if r.ts_ms >= onset {
                if out.exposure_ms.is_none() && r.rack_current.abs() >= EXPOSED_A {
                    out.exposure_ms = Some(r.ts_ms - onset);
                }
                if r.ts_ms < onset + 15 * MIN {
                    cur += r.rack_current.abs();
                    soc += r.soc;
                    rows += 1.0;
                }
            }
        },
        &mut |e| {
            if e.kind != AnomalyKind::Raised {
                return ControlFlow::Continue(());
            }
            if e.ts_ms < onset {
                out.pre_onset_alarms += 1;
                return ControlFlow::Continue(());
            }
            out.detect_ms = Some(e.ts_ms - onset);
            out.top = e.explanation.first().map(|c| c.feature.clone());
            out.named = e
                .explanation
                .iter()
                .find(|c| c.text == e.summary)
                .map(|c| c.feature.clone());
            out.summary = Some(e.summary.clone());
            ControlFlow::Break(())
        },
    )?;
    if rows > 0.0 {
        out.current_after = cur / rows;
        out.soc_after = soc / rows;
    }
    Ok(out)
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / MIN as f64
}

fn report(kind: BessFaultKind, runs: &[Injection]) {
    let n = runs.len();
    let within = |limit: i64| {
        runs.iter()
            .filter(|r| r.detect_ms.is_some_and(|d| d <= limit))
            .count()
    };
    let mut ttd: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.detect_ms.map(minutes))
        .collect();
    ttd.sort_by(f64::total_cmp);
    let pre: u32 = runs.iter().map(|r| r.pre_onset_alarms).sum();
    let count = |f: fn(&Injection) -> Option<&String>| {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for r in runs {
            if let Some(t) = f(r) {
                *by.entry(t.as_str()).or_default() += 1;
            }
        }
        by.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "fault {}: {n} injections, recall within 15 min of onset {:.3} ({}/{n}), within 60 min {:.3}, within 48 h {:.3}; time to detect median {:.1} min, p95 {:.1} min; pre-onset alarms {pre}; top feature: {}; summary names: {}",
        kind.name(),
        within(15 * MIN) as f64 / n as f64,
        within(15 * MIN),
        within(60 * MIN) as f64 / n as f64,
        within(HORIZON) as f64 / n as f64,
        pct(&ttd, 50.0),
        pct(&ttd, 95.0),
        count(|r| r.top.as_ref()),
        count(|r| r.named.as_ref())
    );
    if let Some(s) = runs.iter().find_map(|r| r.summary.as_ref()) {
        println!("  example: {s:?}");
    }
    // From the first exposure (|current| ≥ 20 A).
    let exposed: Vec<&Injection> = runs.iter().filter(|r| r.exposure_ms.is_some()).collect();
    let from_exposure = |r: &Injection| match (r.detect_ms, r.exposure_ms) {
        (Some(d), Some(x)) => Some(d - x),
        _ => None,
    };
    // A run stops at its detection: one detected while the rack rested
    // has no exposure.
    let before = runs
        .iter()
        .filter(|r| r.detect_ms.is_some() && r.exposure_ms.is_none())
        .count();
    let within_x = exposed
        .iter()
        .filter(|r| from_exposure(r).is_some_and(|d| d <= 15 * MIN))
        .count();
    let mut ttx: Vec<f64> = exposed
        .iter()
        .filter_map(|r| from_exposure(r).map(minutes))
        .collect();
    ttx.sort_by(f64::total_cmp);
    let mut wait: Vec<f64> = exposed
        .iter()
        .filter_map(|r| r.exposure_ms.map(minutes))
        .collect();
    wait.sort_by(f64::total_cmp);
    println!(
        "  from the first exposure (|current| >= {EXPOSED_A} A; {} of {n} runs, {:.0} min after onset median, p95 {:.0}): recall within 15 min {:.3} ({}/{}); time to detect median {:.1} min, p95 {:.1} min; detected at rest before any exposure {before}",
        exposed.len(),
        pct(&wait, 50.0),
        pct(&wait, 95.0),
        within_x as f64 / exposed.len().max(1) as f64,
        within_x,
        exposed.len(),
        pct(&ttx, 50.0),
        pct(&ttx, 95.0),
    );
    for (k, r) in runs.iter().enumerate() {
        if r.detect_ms.is_none_or(|d| d > 15 * MIN) {
            println!(
                "  missed within 15 min of onset: run {k}: detected {}, exposure {}, mean |current| {:.0} A and SoC {:.0} % in the 15 min after onset",
                r.detect_ms
                    .map(|d| format!("after {:.1} min", minutes(d)))
                    .unwrap_or_else(|| "never (48 h)".into()),
                r.exposure_ms
                    .map(|d| format!("after {:.1} min", minutes(d)))
                    .unwrap_or_else(|| "never".into()),
                r.current_after,
                r.soc_after
            );
        }
    }
}

pub(crate) fn evaluate(args: &Args, model: &Model) -> Result<()> {
    if model.set != FeatureSet::BessRackV1 {
        bail!("{} is not a bess_rack/1 model", model.meta.model_id);
    }
    print_model(model, "onsets spread over 2026 and the day");
    let n = args.injections;
    for kind in BessFaultKind::ALL {
        let runs = parallel(args, n, |model, k| inject(model, kind, k, n))?;
        report(kind, &runs);
    }
    let days = args.days;
    let assets = args.assets;
    let alarms = parallel(args, assets, |model, a| {
        let start = LOCAL0 + (a * 365 / assets.max(1)) as i64 * DAY;
        let rack = RackModel::new(9000 + a);
        let mut raised = Vec::new();
        run(
            model,
            &rack,
            start - WARM_UP,
            start + days * DAY,
            &mut |_| {},
            &mut |e| {
                if e.kind == AnomalyKind::Raised {
                    raised.push((e.ts_ms - start, e.summary.clone()));
                }
                ControlFlow::Continue(())
            },
        )?;
        Ok(raised)
    })?;
    print_false_alarms("rack", " (starts spread over 2026)", days, &alarms, 0);
    Ok(())
}
