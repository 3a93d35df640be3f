//! `dcmms-eval-anomaly --asset-class pv`: the PV inverter model
//! (`pv-inverter-ae`) against the PV fault physics
//! (`dcmms_simulators::solar::faults`) of inverters the training never saw.
//!
//! Every run is inverter 0 of fleet seed S under the Bhadla weather of seed
//! S (as `dcmms-sim dataset --asset-class pv`), 100 kW, its six roles fed
//! to the edge's detector at the model's sample period (1 minute). Training
//! used seeds 1–216; fault runs here use 5000 + 100 × kind + k, fault-free
//! ones 9000 + a; dates spread over 2026, so every season is in.
//!
//! - Step faults (string outage, over-temperature, failing fan): onset in
//!   daylight, 03:42–10:42 UTC (about 08:30–15:30 solar time), and the
//!   fault stays. Each run starts 26 hours before onset (the 24-hour window
//!   fills, then 2 hours are scored before onset) and ends 60 minutes after
//!   it. Detection = the first anomaly raised at or after onset. Recall
//!   within 15 and 60 minutes, median and p95 time to detect, pre-onset
//!   alarms, the top feature of each detection, and the misses with the
//!   irradiance and load of the 15 minutes after onset.
//! - Soiling drift (2 % of output a day from onset): the same onsets, runs
//!   up to 10 days; time to detect in days and the soiling loss by then.
//! - Both: after a detection the run goes on for 48 hours (the fault
//!   stays) and reports whether and when the anomaly clears.
//! - Insulation fault: the physics trips the inverter only while the module
//!   is below 30 °C, in the first quarter of an hour (night, dawn, cold
//!   mornings). Reports when the inverter first reports a ground fault
//!   (`Evt1` bit 0: what a rule on that bit sees), when it first trips in
//!   daylight (what the model can see: night windows are declined), and the
//!   model's time to detect counted from that first daylight trip. Runs up
//!   to 4 days.
//! - Fault-free: `--assets` inverters × `--days` days after a day that
//!   fills the window; every raise is a false alarm.

use super::{Args, MIN, parallel, pct, print_false_alarms, print_model};
use anyhow::{Result, bail};
use dcmms_edge::anomaly::detector::{AssetWindow, Hysteresis, score_window};
use dcmms_edge::anomaly::features::{FeatureSet, Params};
use dcmms_edge::anomaly::model::Model;
use dcmms_shared::{AnomalyEvent, AnomalyKind, Quality};
use dcmms_simulators::solar::faults::{EVT_GROUND_FAULT, PvFault, PvFaultKind, state_with_faults};
use dcmms_simulators::solar::{InverterModel, SiteModel};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z.
const YEAR0: i64 = 1_767_225_600_000;
const RATED_W: f64 = 100_000.0;
/// Fills the 24-hour window, then 2 hours scored before onset.
const WARM_UP: i64 = 26 * HOUR;
const HORIZON: i64 = 60 * MIN;
const SOILING_HORIZON: i64 = 10 * DAY;
const INSULATION_HORIZON: i64 = 4 * DAY;
/// How long a detected fault is followed to see whether it clears.
const FOLLOW: i64 = 48 * HOUR;
/// Soiling drift of the physics: 2 % of output a day, at most 20 %.
fn soiling_loss_pct(days: f64) -> f64 {
    (2.0 * days).min(20.0)
}

/// One simulated inverter with its weather and faults.
struct Inverter {
    site: SiteModel,
    model: InverterModel,
    faults: Vec<PvFault>,
}

impl Inverter {
    fn new(seed: u64, faults: Vec<PvFault>) -> Inverter {
        Inverter {
            site: SiteModel::bhadla(seed),
            model: InverterModel::fleet_member(seed, 0, RATED_W),
            faults,
        }
    }

    /// The roles of `pv_inverter/1` at `t` (poa, ambient, module, DC, AC,
    /// heat sink) and the inverter's `Evt1` bits.
    fn observe(&self, t: i64) -> ([f64; 6], u32) {
        let c = self.site.conditions(t);
        let s = state_with_faults(&self.model, &c, t, &self.faults);
        (
            [
                c.poa,
                c.ambient_c,
                c.module_c,
                s.dc_power_w,
                s.ac_power_w,
                s.heatsink_c,
            ],
            s.events,
        )
    }
}

/// Runs the edge's detector over `[from, to)` at the model's sample
/// period; stops early when `on_event` breaks.
fn run(
    model: &Model,
    inv: &Inverter,
    from: i64,
    to: i64,
    on_event: &mut dyn FnMut(&AnomalyEvent) -> ControlFlow<()>,
) -> Result<()> {
    let w = model.meta.window;
    let period = i64::try_from(w.sample_period_ms)?.max(1);
    let mut aw = AssetWindow::new(6);
    let mut h = Hysteresis::default();
    let mut windows = Vec::new();
    let mut t = from;
    while t < to {
        let (v, _) = inv.observe(t);
        for (role, x) in v.iter().enumerate() {
            aw.push(
                role,
                t,
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
        t += period;
    }
    Ok(())
}

/// Onset of injection `k` of `n` for the fault kind with index `kind`: a
/// day spread over 2026, 03:42 UTC plus 0–7 hours in 22-minute steps.
fn onset_of(kind: u64, k: u64, n: u64) -> i64 {
    let day = (k * 365 / n.max(1) + 3 * kind) % 365;
    let minutes = 222 + (k * 22) % 420;
    YEAR0 + day as i64 * DAY + minutes as i64 * MIN
}

fn kind_index(kind: PvFaultKind) -> u64 {
    PvFaultKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0) as u64
}

fn seed_of(kind: PvFaultKind, k: u64) -> u64 {
    5000 + 100 * kind_index(kind) + k
}

fn faulty(kind: PvFaultKind, k: u64, onset: i64) -> Inverter {
    Inverter::new(
        seed_of(kind, k),
        vec![PvFault {
            kind,
            start_ms: onset,
            end_ms: None,
        }],
    )
}

/// What one run found.
#[derive(Debug, Clone, Default)]
struct Injection {
    /// From onset (or, for insulation, from the first daylight trip) to the
    /// end of the window that raised the anomaly.
    detect_ms: Option<i64>,
    pre_onset_alarms: u32,
    /// The detection's top feature and summary.
    top: Option<String>,
    summary: Option<String>,
    poa_after: f64,
    load_after: f64,
    /// Insulation: first ground-fault report and first daylight trip, from
    /// onset.
    first_report_ms: Option<i64>,
    first_daylight_trip_ms: Option<i64>,
    /// Within `FOLLOW` after the detection: the first clear (from the
    /// detection), how many clears and raises after it.
    cleared_ms: Option<i64>,
    clears: u32,
    raised_again: u32,
}

/// Runs from `onset − WARM_UP` to `onset + horizon`, stopping at the first
/// raise at or after onset.
/// Runs from `onset − WARM_UP`; the first raise at or after onset and
/// within `horizon` is the detection. After it the run goes on for
/// `follow` (the fault stays) to see whether the anomaly clears.
fn detect(
    model: &Model,
    inv: &Inverter,
    onset: i64,
    horizon: i64,
    follow: i64,
) -> Result<Injection> {
    let mut r = Injection::default();
    run(
        model,
        inv,
        onset - WARM_UP,
        onset + horizon + follow,
        &mut |e| {
            let at = e.ts_ms - onset;
            let Some(d) = r.detect_ms else {
                if at > horizon {
                    return ControlFlow::Break(());
                }
                if e.kind == AnomalyKind::Raised {
                    if at < 0 {
                        r.pre_onset_alarms += 1;
                    } else {
                        r.detect_ms = Some(at);
                        r.top = e.explanation.first().map(|c| c.feature.clone());
                        r.summary = Some(e.summary.clone());
                    }
                }
                return if r.detect_ms.is_some() && follow == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                };
            };
            if at > d + follow {
                return ControlFlow::Break(());
            }
            match e.kind {
                AnomalyKind::Cleared => {
                    r.cleared_ms = r.cleared_ms.or(Some(at - d));
                    r.clears += 1;
                }
                AnomalyKind::Raised => r.raised_again += 1,
            }
            ControlFlow::Continue(())
        },
    )?;
    let (mut poa, mut ac) = (0.0, 0.0);
    for m in 0..15 {
        let (v, _) = inv.observe(onset + m * MIN);
        poa += v[0];
        ac += v[4];
    }
    r.poa_after = poa / 15.0;
    r.load_after = 100.0 * ac / 15.0 / RATED_W;
    Ok(r)
}

fn inject_step(model: &Model, kind: PvFaultKind, k: u64, n: u64) -> Result<Injection> {
    let onset = onset_of(kind_index(kind), k, n);
    detect(model, &faulty(kind, k, onset), onset, HORIZON, FOLLOW)
}

fn inject_insulation(model: &Model, k: u64, n: u64, daylight: f64) -> Result<Injection> {
    let kind = PvFaultKind::InsulationFault;
    let onset = onset_of(kind_index(kind), k, n);
    let inv = faulty(kind, k, onset);
    let (mut report, mut trip) = (None, None);
    let mut t = onset;
    while t < onset + INSULATION_HORIZON && trip.is_none() {
        let (v, events) = inv.observe(t);
        if events & EVT_GROUND_FAULT != 0 {
            report = report.or(Some(t - onset));
            if v[0] >= daylight {
                trip = Some(t - onset);
            }
        }
        t += MIN;
    }
    // Up to an hour after the first daylight trip (the whole horizon
    // without one), stopping at the first raise.
    let end = trip.map_or(INSULATION_HORIZON, |d| d + HORIZON);
    let mut r = detect(model, &inv, onset, end, 0)?;
    r.first_report_ms = report;
    r.first_daylight_trip_ms = trip;
    // Time to detect counts from the first daylight trip.
    r.detect_ms = match (r.detect_ms, trip) {
        (Some(d), Some(t)) => Some(d - t),
        (d, None) => d,
        (None, _) => None,
    };
    Ok(r)
}

fn minutes(ms: i64) -> f64 {
    ms as f64 / MIN as f64
}

fn sorted(v: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    v
}

fn tops(runs: &[Injection]) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in runs {
        if let Some(t) = &r.top {
            *count.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut v: Vec<(&str, usize)> = count.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let parts: Vec<String> = v.iter().map(|(f, n)| format!("{f} {n}")).collect();
    parts.join(", ")
}

/// What happened in the `FOLLOW` after the detections (the fault stays).
fn after(runs: &[Injection]) {
    let detected = runs.iter().filter(|r| r.detect_ms.is_some()).count();
    let hours = sorted(
        runs.iter()
            .filter_map(|r| r.cleared_ms.map(|c| c as f64 / HOUR as f64)),
    );
    let clears: u32 = runs.iter().map(|r| r.clears).sum();
    let again: u32 = runs.iter().map(|r| r.raised_again).sum();
    let when = if hours.is_empty() {
        String::new()
    } else {
        format!(
            ", first clear {:.1} h after detection median, p95 {:.1} h",
            pct(&hours, 50.0),
            pct(&hours, 95.0)
        )
    };
    println!(
        "  48 h after detection, fault still there: cleared in {}/{detected} runs{when}; {clears} clears and {again} raises again in all",
        hours.len(),
    );
}

/// The summary of the first run that raised one, as an example.
fn example(runs: &[Injection]) {
    if let Some((k, s)) = runs
        .iter()
        .enumerate()
        .find_map(|(k, r)| r.summary.as_ref().map(|s| (k, s)))
    {
        println!("  example: run {k}: \"{s}\"");
    }
}

fn report_step(kind: PvFaultKind, runs: &[Injection]) {
    let n = runs.len();
    let within = |limit: i64| {
        runs.iter()
            .filter(|r| r.detect_ms.is_some_and(|d| d <= limit))
            .count()
    };
    let ttd = sorted(runs.iter().filter_map(|r| r.detect_ms.map(minutes)));
    let pre: u32 = runs.iter().map(|r| r.pre_onset_alarms).sum();
    println!(
        "fault {}: {n} injections, recall within 15 min {:.3} ({}/{n}), within 60 min {:.3}; time to detect median {:.1} min, p95 {:.1} min; pre-onset alarms {pre}; top feature: {}",
        kind.name(),
        within(15 * MIN) as f64 / n as f64,
        within(15 * MIN),
        within(60 * MIN) as f64 / n as f64,
        pct(&ttd, 50.0),
        pct(&ttd, 95.0),
        tops(runs)
    );
    example(runs);
    after(runs);
    for (k, r) in runs.iter().enumerate() {
        if r.detect_ms.is_none_or(|d| d > 15 * MIN) {
            println!(
                "  missed within 15 min: run {k}: detected {}, mean irradiance {:.0} W/m² and load {:.0} % in the 15 min after onset",
                r.detect_ms
                    .map(|d| format!("after {:.1} min", minutes(d)))
                    .unwrap_or_else(|| "never (60 min)".into()),
                r.poa_after,
                r.load_after
            );
        }
    }
}

fn report_soiling(runs: &[Injection]) {
    let n = runs.len();
    let within = |limit: i64| {
        runs.iter()
            .filter(|r| r.detect_ms.is_some_and(|d| d <= limit))
            .count()
    };
    let days = sorted(
        runs.iter()
            .filter_map(|r| r.detect_ms.map(|d| d as f64 / DAY as f64)),
    );
    let loss = sorted(days.iter().map(|d| soiling_loss_pct(*d)));
    let pre: u32 = runs.iter().map(|r| r.pre_onset_alarms).sum();
    println!(
        "fault soiling_drift: {n} injections, recall within 15 min {:.3} ({}/{n}), within 1 day {:.3}, 3 days {:.3}, 10 days {:.3} ({}/{n}); time to detect median {:.2} days, p95 {:.2} days; soiling loss at detection median {:.1} %, p95 {:.1} %; pre-onset alarms {pre}; top feature: {}",
        within(15 * MIN) as f64 / n as f64,
        within(15 * MIN),
        within(DAY) as f64 / n as f64,
        within(3 * DAY) as f64 / n as f64,
        within(SOILING_HORIZON) as f64 / n as f64,
        within(SOILING_HORIZON),
        pct(&days, 50.0),
        pct(&days, 95.0),
        pct(&loss, 50.0),
        pct(&loss, 95.0),
        tops(runs)
    );
    example(runs);
    after(runs);
}

fn report_insulation(runs: &[Injection]) {
    let n = runs.len();
    let hours = |ms: i64| ms as f64 / HOUR as f64;
    let reports = sorted(runs.iter().filter_map(|r| r.first_report_ms.map(hours)));
    let trips = sorted(
        runs.iter()
            .filter_map(|r| r.first_daylight_trip_ms.map(hours)),
    );
    let with_trip: Vec<&Injection> = runs
        .iter()
        .filter(|r| r.first_daylight_trip_ms.is_some())
        .collect();
    let m = with_trip.len();
    let within = |limit: i64| {
        with_trip
            .iter()
            .filter(|r| r.detect_ms.is_some_and(|d| (0..=limit).contains(&d)))
            .count()
    };
    let ttd = sorted(
        with_trip
            .iter()
            .filter_map(|r| r.detect_ms.filter(|d| *d >= 0).map(minutes)),
    );
    let early = with_trip
        .iter()
        .filter(|r| r.detect_ms.is_some_and(|d| d < 0))
        .count();
    let pre: u32 = runs.iter().map(|r| r.pre_onset_alarms).sum();
    println!(
        "fault insulation_fault: {n} injections; first ground-fault report (Evt1 bit 0) in {}/{n} within 4 days, {:.1} h after onset median, p95 {:.1} h; first daylight trip in {m}/{n}, {:.1} h after onset median, p95 {:.1} h",
        reports.len(),
        pct(&reports, 50.0),
        pct(&reports, 95.0),
        pct(&trips, 50.0),
        pct(&trips, 95.0),
    );
    println!(
        "  model, from the first daylight trip: recall within 15 min {:.3} ({}/{m}), within 60 min {:.3}; time to detect median {:.1} min, p95 {:.1} min; raised before it {early}; pre-onset alarms {pre}; top feature: {}",
        within(15 * MIN) as f64 / m.max(1) as f64,
        within(15 * MIN),
        within(60 * MIN) as f64 / m.max(1) as f64,
        pct(&ttd, 50.0),
        pct(&ttd, 95.0),
        tops(runs)
    );
    example(runs);
    for (k, r) in runs.iter().enumerate() {
        if let Some(trip) = r.first_daylight_trip_ms
            && r.detect_ms.is_none_or(|d| !(0..=15 * MIN).contains(&d))
        {
            println!(
                "  missed within 15 min of the first daylight trip: run {k}: trip {:.1} h after onset, detected {}",
                hours(trip),
                r.detect_ms
                    .map(|d| format!("{:.1} min after it", minutes(d)))
                    .unwrap_or_else(|| "never (60 min)".into()),
            );
        }
    }
}

pub(crate) fn evaluate(args: &Args, model: &Model) -> Result<()> {
    let daylight = match (&model.set, &model.params) {
        (FeatureSet::PvInverterV1, Params::Pv(p)) => p.daylight_poa,
        _ => bail!("{} is not a pv_inverter/1 model", model.meta.model_id),
    };
    print_model(model, "onsets spread over 2026");
    let n = args.injections;
    for kind in [
        PvFaultKind::StringOutage,
        PvFaultKind::OverTemperature,
        PvFaultKind::FailingFan,
    ] {
        let runs = parallel(args, n, |model, k| inject_step(model, kind, k, n))?;
        report_step(kind, &runs);
    }
    let runs = parallel(args, n, |model, k| {
        let kind = PvFaultKind::SoilingDrift;
        let onset = onset_of(kind_index(kind), k, n);
        detect(
            model,
            &faulty(kind, k, onset),
            onset,
            SOILING_HORIZON,
            FOLLOW,
        )
    })?;
    report_soiling(&runs);
    let runs = parallel(args, n, |model, k| inject_insulation(model, k, n, daylight))?;
    report_insulation(&runs);

    let days = args.days;
    let assets = args.assets;
    let alarms = parallel(args, assets, |model, a| {
        let start = YEAR0 + (a * 365 / assets.max(1)) as i64 * DAY;
        let inv = Inverter::new(9000 + a, Vec::new());
        let mut raised = Vec::new();
        run(model, &inv, start - DAY, start + days * DAY, &mut |e| {
            if e.kind == AnomalyKind::Raised {
                raised.push((e.ts_ms - start, e.summary.clone()));
            }
            ControlFlow::Continue(())
        })?;
        Ok(raised)
    })?;
    print_false_alarms("inverter", " (starts spread over 2026)", days, &alarms, 0);
    Ok(())
}
