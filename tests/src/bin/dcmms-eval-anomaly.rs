//! `dcmms-eval-anomaly`: how well an anomaly model finds the simulator's
//! faults, with the edge's own runtime code (rows, windows, features,
//! tract, hysteresis: `dcmms_edge::anomaly::detector`) on seeds the
//! training never saw (here ≥ 5000). `--asset-class wind` (the default,
//! training seeds 1–8, validation 9–12) is described below; `--asset-class
//! pv` (training 1–216) in `eval_anomaly/pv.rs`, `--asset-class bess`
//! (training 1–50) in `eval_anomaly/bess.rs`.
//!
//! - Per fault type: `--injections` runs, each a different turbine (seed)
//!   and time of day; the fault starts 90 minutes into the run (the first
//!   5 fill the window) and stays. Detection = the first anomaly raised at
//!   or after onset. Prints recall within 15 minutes (and 60), median and
//!   p95 time to detect, and why the misses missed (wind and load in the
//!   15 minutes after onset).
//! - Fault-free: `--assets` turbines × `--days` days; every raise is a
//!   false alarm. Prints false alarms per asset per 30 days.
//!
//! Run in release: `cargo run --release -p dcmms-tests --bin
//! dcmms-eval-anomaly`.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use dcmms_edge::anomaly::detector::{AssetWindow, Hysteresis, score_window};
use dcmms_edge::anomaly::model::Model;
use dcmms_shared::{AnomalyEvent, AnomalyKind, Quality};
use dcmms_simulators::opcua::{TurbineModel, TurbineReading, WindFault, WindFaultKind};
use std::path::{Path, PathBuf};

#[path = "eval_anomaly/bess.rs"]
mod bess;
#[path = "eval_anomaly/pv.rs"]
mod pv;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AssetClass {
    /// The wind turbine of `dcmms-sim opcua` (wind-turbine-ae).
    Wind,
    /// Inverter 0 of a `dcmms-sim modbus` fleet (pv-inverter-ae).
    Pv,
    /// The BESS rack of `dcmms-sim dataset --asset-class bess` (bess-rack-ae).
    Bess,
}

#[derive(Debug, Parser)]
#[command(about = "Recall, time to detect and false alarms of the anomaly models")]
struct Args {
    /// Which model and physics.
    #[arg(long, value_enum, default_value_t = AssetClass::Wind)]
    asset_class: AssetClass,
    /// The model (.onnx, metadata beside it); default: the committed model
    /// of the asset class.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Runs per fault type.
    #[arg(long, default_value_t = 40)]
    injections: u64,
    /// Fault-free assets.
    #[arg(long, default_value_t = 10)]
    assets: u64,
    /// Fault-free days per asset.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

impl Args {
    fn model_path(&self) -> PathBuf {
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge/models");
        match (&self.model, self.asset_class) {
            (Some(p), _) => p.clone(),
            (None, AssetClass::Wind) => models.join("wind-turbine/wind-turbine-ae.onnx"),
            (None, AssetClass::Pv) => models.join("pv-inverter/pv-inverter-ae.onnx"),
            (None, AssetClass::Bess) => models.join("bess-rack/bess-rack-ae.onnx"),
        }
    }
}

/// 2026-04-01T00:00:00Z: a month the training data (January) never saw.
const T0: i64 = 1_775_001_600_000;
const MIN: i64 = 60_000;
const WARM_UP: i64 = 90 * MIN;
const HORIZON: i64 = 60 * MIN;

fn values(r: &TurbineReading) -> [f64; 8] {
    [
        r.wind_speed,
        r.active_power,
        r.rotor_speed,
        r.pitch_angle,
        r.gearbox_temperature,
        r.generator_temperature,
        r.bearing_temperature,
        r.ambient_temperature,
    ]
}

/// Runs the edge's detector over `[from, to)` at the model's sample period.
fn run(
    model: &Model,
    turbine: &TurbineModel,
    from: i64,
    to: i64,
    on_event: &mut dyn FnMut(&AnomalyEvent),
) -> Result<()> {
    let w = model.meta.window;
    let mut aw = AssetWindow::new(8);
    let mut h = Hysteresis::default();
    let mut windows = Vec::new();
    let mut t = from;
    while t < to {
        let v = values(&turbine.observe(t));
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
        for x in windows.drain(..) {
            if let (_, Some(e)) = score_window(model, "eval", &mut h, &x)? {
                on_event(&e);
            }
        }
        t += w.sample_period_ms as i64;
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Injection {
    detect_ms: Option<i64>,
    pre_onset_alarms: u32,
    wind_after: f64,
    power_after: f64,
}

fn inject(model: &Model, kind: WindFaultKind, k: u64) -> Result<Injection> {
    let seed = 5000 + 100 * kind as u64 + k;
    // Spread onsets over days and times of day.
    let onset = T0 + (k as i64) * 86_400_000 + ((k as i64 * 7_919_000) % 86_400_000);
    let turbine = TurbineModel::new(seed, 3000.0).with_faults(vec![WindFault {
        kind,
        start_ms: onset,
        end_ms: None,
    }]);
    let mut detect_ms = None;
    let mut pre = 0;
    run(
        model,
        &turbine,
        onset - WARM_UP,
        onset + HORIZON,
        &mut |e| {
            if e.kind == AnomalyKind::Raised {
                if e.ts_ms < onset {
                    pre += 1;
                } else if detect_ms.is_none() {
                    detect_ms = Some(e.ts_ms - onset);
                }
            }
        },
    )?;
    let (mut wind, mut power) = (0.0, 0.0);
    for s in 0..15 * 60 {
        let r = turbine.observe(onset + s * 1000);
        wind += r.wind_speed;
        power += r.active_power;
    }
    Ok(Injection {
        detect_ms,
        pre_onset_alarms: pre,
        wind_after: wind / 900.0,
        power_after: power / 900.0,
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `f(i)` for i in 0..n on `threads` threads, each with its own model.
fn parallel<T: Send>(
    args: &Args,
    n: u64,
    f: impl Fn(&Model, u64) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = args.threads.max(1) as u64;
    let results: Vec<Result<Vec<(u64, T)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                let f = &f;
                s.spawn(move || -> Result<Vec<(u64, T)>> {
                    let model = Model::load(&args.model_path())?;
                    let mut out = Vec::new();
                    let mut i = th;
                    while i < n {
                        out.push((i, f(&model, i)?));
                        i += threads;
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("worker panicked")))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release");
    }
    let model = Model::load(&args.model_path()).context("loading the model")?;
    if args.asset_class == AssetClass::Pv {
        return pv::evaluate(&args, &model);
    }
    if args.asset_class == AssetClass::Bess {
        return bess::evaluate(&args, &model);
    }
    print_model(&model, "from 2026-04-01");
    for kind in WindFaultKind::ALL {
        let runs = parallel(&args, args.injections, |model, k| inject(model, kind, k))?;
        let n = runs.len() as f64;
        let within = |limit: i64| {
            runs.iter()
                .filter(|r| r.detect_ms.is_some_and(|d| d <= limit))
                .count()
        };
        let mut ttd: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.detect_ms.map(|d| d as f64 / 60_000.0))
            .collect();
        ttd.sort_by(f64::total_cmp);
        let pre: u32 = runs.iter().map(|r| r.pre_onset_alarms).sum();
        println!(
            "fault {}: {} injections, recall within 15 min {:.3} ({}/{}), within 60 min {:.3}; time to detect median {:.1} min, p95 {:.1} min; pre-onset alarms {}",
            kind.name(),
            runs.len(),
            within(15 * MIN) as f64 / n,
            within(15 * MIN),
            runs.len(),
            within(60 * MIN) as f64 / n,
            pct(&ttd, 50.0),
            pct(&ttd, 95.0),
            pre
        );
        for (k, r) in runs.iter().enumerate() {
            if r.detect_ms.is_none_or(|d| d > 15 * MIN) {
                println!(
                    "  missed within 15 min: run {k}: detected {}, mean wind {:.1} m/s and power {:.0} kW in the 15 min after onset",
                    r.detect_ms
                        .map(|d| format!("after {:.1} min", d as f64 / 60_000.0))
                        .unwrap_or_else(|| "never (60 min)".into()),
                    r.wind_after,
                    r.power_after
                );
            }
        }
    }
    let alarms = parallel(&args, args.assets, |model, a| {
        let turbine = TurbineModel::new(9000 + a, 3000.0);
        let mut raised = Vec::new();
        run(model, &turbine, T0, T0 + args.days * 86_400_000, &mut |e| {
            if e.kind == AnomalyKind::Raised {
                raised.push((e.ts_ms, e.summary.clone()));
            }
        })?;
        Ok(raised)
    })?;
    print_false_alarms("turbine", "", args.days, &alarms, T0);
    Ok(())
}

/// The model line that opens every report; `seeds` says how the held-out
/// runs are spread.
pub(crate) fn print_model(model: &Model, seeds: &str) {
    let m = &model.meta;
    println!(
        "model {} {} (raise {:.4} x{}, clear {:.4} x{}, window {} x {} ms, step {}); held-out seeds >= 5000, {seeds}",
        m.model_id,
        m.version,
        m.score.raise,
        m.score.raise_count,
        m.score.clear,
        m.score.clear_count,
        m.window.length,
        m.window.sample_period_ms,
        m.window.step
    );
}

/// The false-alarm summary of fault-free runs: `alarms[a]` holds the
/// raises of the asset of seed 9000 + a, as (ms, summary) with the ms
/// counted from `origin_ms`; `note` follows the count of days.
pub(crate) fn print_false_alarms(
    noun: &str,
    note: &str,
    days: i64,
    alarms: &[Vec<(i64, String)>],
    origin_ms: i64,
) {
    let assets = alarms.len();
    let total: usize = alarms.iter().map(|a| a.len()).sum();
    let asset_months = (assets as f64) * (days as f64) / 30.0;
    println!(
        "false alarms: {assets} fault-free {noun}s x {days} days{note}: {total} raised = {:.2} per asset per 30 days",
        total as f64 / asset_months
    );
    for (a, list) in alarms.iter().enumerate() {
        for (ts, summary) in list {
            println!(
                "  {noun} seed {} at day {:.2}: {summary}",
                9000 + a,
                (ts - origin_ms) as f64 / 86_400_000.0
            );
        }
    }
}
