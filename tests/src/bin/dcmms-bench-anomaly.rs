//! `dcmms-bench-anomaly`: how fast the edge scores anomaly windows.
//!
//! 1. Latency per window: the committed wind-turbine model scoring
//!    realistic feature vectors (normalise + tract + score), and the whole
//!    window (features over the window's rows + scoring), one at a time,
//!    each timed; p50 and p99.
//! 2. CPU cost of 1,000 turbines: the agent's anomaly engine fed through
//!    the batcher's entry point (`Engine::on_reading`) with 1,000 devices of
//!    8 points each at 1 s, for `--seconds` of sample time after a warm-up
//!    that fills the windows. Once with the model as shipped (a window every
//!    10 s per asset) and once with `step = 1` (every asset scored every
//!    second: 1,000 windows/s). Busy time is the thread's CPU time
//!    (/proc/thread-self/stat) over the timed calls only; generating the
//!    simulated readings is not counted.
//!
//! `--asset-class pv`: the same for the PV inverter model (6 points at the
//! model's 1-minute period, 24-hour windows, every asset scored every
//! period as shipped, so there is no second run); it also prints the
//! process's resident memory once the assets' windows are full.
//!
//! `--asset-class bess`: the BESS rack model (7 points at 10 s, 30-minute
//! windows, scored every 6 rows as shipped, then every row), timed from
//! 17:30 local time (the evening discharge starts 18:00–19:00).
//!
//! Run in release: `cargo run --release -p dcmms-tests --bin
//! dcmms-bench-anomaly`.

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use dcmms_edge::EdgeConfig;
use dcmms_edge::anomaly::detector::AssetWindow;
use dcmms_edge::anomaly::engine::{Engine, Registry};
use dcmms_edge::anomaly::model::Model;
use dcmms_edge::drivers::Reading;
use dcmms_shared::{Quality, Sample};
use dcmms_simulators::bess::{RackModel, RackReading, STEP_MS};
use dcmms_simulators::opcua::TurbineModel;
use dcmms_simulators::solar::faults::state_with_faults;
use dcmms_simulators::solar::{InverterModel, SiteModel};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AssetClass {
    /// wind-turbine-ae on the turbine of `dcmms-sim opcua`.
    Wind,
    /// pv-inverter-ae on inverters of `dcmms-sim modbus`.
    Pv,
    /// bess-rack-ae on the racks of `dcmms-sim dataset --asset-class bess`.
    Bess,
}

#[derive(Debug, Parser)]
#[command(about = "Latency and CPU cost of edge anomaly scoring")]
struct Args {
    /// Which model and physics.
    #[arg(long, value_enum, default_value_t = AssetClass::Wind)]
    asset_class: AssetClass,
    /// The model (.onnx; metadata beside it); default: the committed model
    /// of the asset class.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Windows timed one by one for the latency figures.
    #[arg(long, default_value_t = 100_000)]
    windows: usize,
    /// Assets in the CPU run.
    #[arg(long, default_value_t = 1000)]
    assets: usize,
    /// Sample periods timed in the CPU run (after the warm-up): seconds for
    /// the wind model, minutes for the PV model, 10 s for the BESS model.
    #[arg(long, default_value_t = 120)]
    periods: i64,
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

/// One simulated asset: its point values at an instant, in role order.
#[derive(Debug)]
enum Sim {
    Wind(Box<TurbineModel>),
    Pv(Box<(SiteModel, InverterModel)>),
    /// The rack and the readings of the last day asked for (the model
    /// integrates a day from its start; one pass per day).
    Bess(Box<RackModel>, RefCell<Option<(i64, Vec<RackReading>)>>),
}

impl Sim {
    fn new(class: AssetClass, seed: u64) -> Sim {
        match class {
            AssetClass::Wind => Sim::Wind(Box::new(TurbineModel::new(seed, 3000.0))),
            AssetClass::Pv => Sim::Pv(Box::new((
                SiteModel::bhadla(seed),
                InverterModel::fleet_member(seed, 0, 100_000.0),
            ))),
            AssetClass::Bess => Sim::Bess(Box::new(RackModel::new(seed)), RefCell::new(None)),
        }
    }

    fn vars(&self) -> &'static [&'static str] {
        match self {
            Sim::Wind(_) => &VARS,
            Sim::Pv(_) => &PV_VARS,
            Sim::Bess(..) => &BESS_VARS,
        }
    }

    fn observe(&self, t: i64) -> Result<Vec<f64>> {
        match self {
            Sim::Wind(m) => {
                let r = m.observe(t);
                VARS.iter()
                    .map(|v| r.field(v).context("variable"))
                    .collect()
            }
            Sim::Pv(p) => {
                let (site, inv) = &**p;
                let c = site.conditions(t);
                let s = state_with_faults(inv, &c, t, &[]);
                Ok(vec![
                    c.poa,
                    c.ambient_c,
                    c.module_c,
                    s.dc_power_w,
                    s.ac_power_w,
                    s.heatsink_c,
                ])
            }
            Sim::Bess(rack, day) => {
                let start = RackModel::day_start(t);
                let mut day = day.borrow_mut();
                if day.as_ref().is_none_or(|(d, _)| *d != start) {
                    let all = rack.readings(start, start + 86_400_000, STEP_MS).collect();
                    *day = Some((start, all));
                }
                let i = usize::try_from((t - start) / STEP_MS)?;
                let r = day
                    .as_ref()
                    .and_then(|(_, all)| all.get(i))
                    .context("reading")?;
                Ok(r.roles().to_vec())
            }
        }
    }
}

/// The PV inverter's points (weather station and SunSpec model 103), in
/// the role order of `pv_inverter/1`.
const PV_VARS: [&str; 6] = [
    "Irradiance",
    "AmbientTemperature",
    "ModuleTemperature",
    "DCW",
    "W",
    "TmpSnk",
];
const PV_ROLES: [&str; 6] = [
    "poa_irradiance",
    "ambient_temp",
    "module_temp",
    "dc_power",
    "ac_power",
    "heatsink_temp",
];

/// A BMS's points, in the role order of `bess_rack/1`.
const BESS_VARS: [&str; 7] = [
    "RackCurrent",
    "Soc",
    "CellVMax",
    "CellVMin",
    "CellTMax",
    "CellTMin",
    "HvacTemperature",
];
const BESS_ROLES: [&str; 7] = [
    "rack_current",
    "soc",
    "cell_v_max",
    "cell_v_min",
    "cell_t_max",
    "cell_t_min",
    "ambient_temp",
];

const VARS: [&str; 8] = [
    "WindSpeed",
    "ActivePower",
    "RotorSpeed",
    "PitchAngle",
    "GearboxTemperature",
    "GeneratorTemperature",
    "BearingTemperature",
    "AmbientTemperature",
];
const ROLES: [&str; 8] = [
    "wind_speed",
    "active_power",
    "rotor_speed",
    "pitch_angle",
    "gearbox_temp",
    "generator_temp",
    "bearing_temp",
    "ambient_temp",
];
/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000;

/// This thread's CPU time (user + system), from /proc; 10 ms resolution.
fn thread_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat")?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).context("stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the comm field.
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn latency(args: &Args) -> Result<()> {
    let model = Model::load(&args.model_path())?;
    let w = model.meta.window;
    // Realistic inputs: the rows of a simulated asset, windows as the
    // edge forms them.
    let sim = Sim::new(args.asset_class, 4242);
    let roles = sim.vars().len();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut aw = AssetWindow::new(roles);
    let mut windows = Vec::new();
    let mut t = T0;
    while windows.len() < args.windows.min(20_000) {
        let row = sim.observe(t)?;
        for (i, v) in row.iter().enumerate() {
            aw.push(
                i,
                t,
                *v,
                Quality::Good,
                w,
                model.set,
                &model.params,
                &mut |x| windows.push(x),
            );
        }
        rows.push(row);
        t += w.sample_period_ms as i64;
    }
    let mut infer = Vec::with_capacity(args.windows);
    let mut sink = 0.0;
    for k in 0..args.windows {
        let x = &windows[k % windows.len()].features;
        let start = Instant::now();
        let s = model.score(x)?;
        infer.push(start.elapsed());
        sink += s.score;
    }
    // Whole window: features over `length` rows, then scoring. PV: only
    // the windows the edge scores (daylight).
    let mut whole = Vec::with_capacity(args.windows);
    let mut feats = vec![0.0; model.feature_count()];
    let mut k = 0;
    while whole.len() < args.windows {
        let end = w.length + (k * w.step) % (rows.len() - w.length);
        k += 1;
        if args.asset_class == AssetClass::Pv
            && !model.set.compute(
                &model.params,
                rows[end - w.length..end].iter().map(|r| &r[..]),
                &mut feats,
            )
        {
            continue;
        }
        let start = Instant::now();
        model.set.compute(
            &model.params,
            rows[end - w.length..end].iter().map(|r| &r[..]),
            &mut feats,
        );
        let s = model.score(&feats)?;
        whole.push(start.elapsed());
        sink += s.score;
    }
    infer.sort();
    whole.sort();
    println!(
        "model {} {}: {} features, window {} rows",
        model.meta.model_id,
        model.meta.version,
        model.feature_count(),
        w.length
    );
    println!(
        "inference per window (normalise + tract + score), {} windows: p50 {}, p99 {}, max {}",
        infer.len(),
        us(percentile(&infer, 50.0)),
        us(percentile(&infer, 99.0)),
        us(percentile(&infer, 100.0)),
    );
    println!(
        "features + inference per window ({} rows), {} windows: p50 {}, p99 {}, max {}",
        w.length,
        whole.len(),
        us(percentile(&whole, 50.0)),
        us(percentile(&whole, 99.0)),
        us(percentile(&whole, 100.0)),
    );
    if !sink.is_finite() {
        bail!("non-finite score");
    }
    Ok(())
}

fn fleet_config(args: &Args, model: &Path) -> Result<EdgeConfig> {
    let mut t = String::from(
        "gateway_id = \"gw\"\n[cloud]\nurl = \"http://127.0.0.1:9\"\ncredential = \"gw.00\"\n",
    );
    let vars = Sim::new(args.asset_class, 0).vars();
    let (roles, id, prefix) = match args.asset_class {
        AssetClass::Wind => (&ROLES[..], "wind-turbine-ae", "WTG"),
        AssetClass::Pv => (&PV_ROLES[..], "pv-inverter-ae", "INV"),
        AssetClass::Bess => (&BESS_ROLES[..], "bess-rack-ae", "BESS"),
    };
    t.push_str("[[templates]]\nname = \"turbine\"\n");
    for (i, v) in vars.iter().enumerate() {
        t.push_str(&format!(
            "[[templates.points]]\nname = \"{v}\"\naddress = {i}\ntype = \"u16\"\n"
        ));
    }
    t.push_str(&format!(
        "[anomaly]\nwatch_interval_ms = 0\n[[anomaly.models]]\nid = \"{id}\"\npath = {:?}\n",
        model.display().to_string()
    ));
    for a in 0..args.assets {
        t.push_str(&format!(
            "[[anomaly.assets]]\nasset = \"{prefix}-{a:04}\"\nmodel = \"{id}\"\n[anomaly.assets.points]\n"
        ));
        for (role, v) in roles.iter().zip(vars) {
            t.push_str(&format!("{role} = \"t{a:04}/{v}\"\n"));
        }
    }
    for a in 0..args.assets {
        t.push_str(&format!(
            "[[devices]]\nname = \"t{a:04}\"\npoll_interval_ms = 1000\ntemplate = \"turbine\"\n\
             [devices.modbus_tcp]\nhost = \"127.0.0.1\"\nport = 9\nunit_id = 1\n"
        ));
    }
    Ok(EdgeConfig::from_toml(&t, "bench.toml")?)
}

fn cpu(args: &Args, model: &Path, label: &str) -> Result<()> {
    let cfg = fleet_config(args, model)?;
    let registry = Arc::new(Registry::load(&cfg.anomaly)?);
    let window = registry.current(0).context("model")?.meta.window;
    let (step, length) = (window.step, window.length as i64);
    let period = i64::try_from(window.sample_period_ms)?.max(1);
    let mut engine = Engine::new(&cfg.anomaly.assets, registry.clone())?;
    let sims: Vec<Sim> = (0..args.assets)
        .map(|a| Sim::new(args.asset_class, 10_000 + a as u64))
        .collect();
    let points = sims.first().map_or(0, |s| s.vars().len());
    let readings_at = |t: i64| -> Vec<Reading> {
        sims.iter()
            .enumerate()
            .map(|(d, m)| {
                let values = m.observe(t).unwrap_or_default();
                Reading {
                    device: d,
                    samples: values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            (
                                i,
                                Sample {
                                    ts_ms: t,
                                    value: *v,
                                    quality: Quality::Good,
                                },
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    };
    // Warm-up: fill every window. PV: start so that the timed part is
    // daylight (the windows are full at T0 + 28 h, 04:00 UTC, about 08:50
    // solar time at Bhadla).
    let start = match args.asset_class {
        AssetClass::Wind => T0,
        AssetClass::Pv => T0 + 4 * 3_600_000,
        // 17:30 local; windows full at 18:00.
        AssetClass::Bess => T0 + 12 * 3_600_000,
    };
    for s in 0..length + 1 {
        for r in readings_at(start + s * period) {
            engine.on_reading(&cfg, &r);
        }
    }
    if args.asset_class == AssetClass::Pv {
        let kib = dcmms_tests::procstat::proc_status_kib(std::process::id(), "VmRSS")?;
        println!(
            "{} assets x {points} points, windows of {length} rows full: resident memory {:.0} MiB",
            args.assets,
            kib as f64 / 1024.0
        );
    }
    let scored_before = registry
        .counters
        .windows_scored
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut busy_wall, mut busy_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut events = 0usize;
    for s in 0..args.periods {
        let batch = readings_at(start + (length + 1 + s) * period);
        let (c0, w0) = (thread_cpu()?, Instant::now());
        for r in &batch {
            events += engine.on_reading(&cfg, r).len();
        }
        busy_wall += w0.elapsed();
        busy_cpu += thread_cpu()? - c0;
    }
    let scored = registry
        .counters
        .windows_scored
        .load(std::sync::atomic::Ordering::Relaxed)
        - scored_before;
    let data_s = (args.periods * period) as f64 / 1000.0;
    let per_s = |d: Duration| d.as_secs_f64() / data_s;
    let at = if period % 1000 == 0 {
        format!("{} s", period / 1000)
    } else {
        format!("{period} ms")
    };
    println!(
        "{} assets x {points} points at {at}, {label} (step {step}): {} windows scored in {data_s} s of sample time ({:.0}/s), {events} events; \
         CPU {:.2} ms per second of data = {:.2} % of one core (wall {:.2} ms = {:.2} %)",
        args.assets,
        scored,
        scored as f64 / data_s,
        per_s(busy_cpu) * 1e3,
        per_s(busy_cpu) * 100.0,
        per_s(busy_wall) * 1e3,
        per_s(busy_wall) * 100.0,
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    let path = args.model_path();
    latency(&args)?;
    cpu(&args, &path, "model as shipped")?;
    if args.asset_class == AssetClass::Pv {
        // Shipped with step 1: every asset is scored every period already.
        return Ok(());
    }
    // The same network scoring every asset every second.
    let dir = tempfile::tempdir()?;
    let onnx = dir.path().join("every-second.onnx");
    std::fs::copy(&path, &onnx)?;
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.with_extension("json"))?)?;
    meta["window"]["step"] = 1.into();
    std::fs::write(onnx.with_extension("json"), serde_json::to_vec(&meta)?)?;
    let label = match args.asset_class {
        AssetClass::Bess => "every asset scored every row (10 s)",
        _ => "every asset scored every second",
    };
    cpu(&args, &onnx, label)?;
    Ok(())
}
