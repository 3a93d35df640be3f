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
//! Run in release: `cargo run --release -p dcmms-tests --bin
//! dcmms-bench-anomaly`.

use anyhow::{Context, Result, bail};
use clap::Parser;
use dcmms_edge::EdgeConfig;
use dcmms_edge::anomaly::detector::AssetWindow;
use dcmms_edge::anomaly::engine::{Engine, Registry};
use dcmms_edge::anomaly::model::Model;
use dcmms_edge::drivers::Reading;
use dcmms_shared::{Quality, Sample};
use dcmms_simulators::opcua::TurbineModel;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "Latency and CPU cost of edge anomaly scoring")]
struct Args {
    /// The model (.onnx; metadata beside it).
    #[arg(long, default_value_os_t = default_model())]
    model: PathBuf,
    /// Windows timed one by one for the latency figures.
    #[arg(long, default_value_t = 100_000)]
    windows: usize,
    /// Assets in the CPU run.
    #[arg(long, default_value_t = 1000)]
    assets: usize,
    /// Seconds of sample time timed in the CPU run (after the warm-up).
    #[arg(long, default_value_t = 120)]
    seconds: i64,
}

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge/models/wind-turbine/wind-turbine-ae.onnx")
}

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
    let model = Model::load(&args.model)?;
    let w = model.meta.window;
    // Realistic inputs: the rows of a simulated turbine, windows as the
    // edge forms them.
    let turbine = TurbineModel::new(4242, 3000.0);
    let mut rows: Vec<[f64; 8]> = Vec::new();
    let mut aw = AssetWindow::new(8);
    let mut windows = Vec::new();
    let mut t = T0;
    while windows.len() < args.windows.min(20_000) {
        let r = turbine.observe(t);
        let mut row = [0.0; 8];
        for (i, v) in VARS.iter().enumerate() {
            row[i] = r.field(v).context("variable")?;
            aw.push(
                i,
                t,
                row[i],
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
    // Whole window: features over `length` rows, then scoring.
    let mut whole = Vec::with_capacity(args.windows);
    let mut feats = vec![0.0; model.feature_count()];
    for k in 0..args.windows {
        let end = w.length + (k * w.step) % (rows.len() - w.length);
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
    t.push_str("[[templates]]\nname = \"turbine\"\n");
    for (i, v) in VARS.iter().enumerate() {
        t.push_str(&format!(
            "[[templates.points]]\nname = \"{v}\"\naddress = {i}\ntype = \"u16\"\n"
        ));
    }
    t.push_str(&format!(
        "[anomaly]\nwatch_interval_ms = 0\n[[anomaly.models]]\nid = \"wind-turbine-ae\"\npath = {:?}\n",
        model.display().to_string()
    ));
    for a in 0..args.assets {
        t.push_str(&format!(
            "[[anomaly.assets]]\nasset = \"WTG-{a:04}\"\nmodel = \"wind-turbine-ae\"\n[anomaly.assets.points]\n"
        ));
        for (role, v) in ROLES.iter().zip(VARS) {
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
    let step = registry.current(0).context("model")?.meta.window.step;
    let length = registry.current(0).context("model")?.meta.window.length as i64;
    let mut engine = Engine::new(&cfg.anomaly.assets, registry.clone())?;
    let turbines: Vec<TurbineModel> = (0..args.assets)
        .map(|a| TurbineModel::new(10_000 + a as u64, 3000.0))
        .collect();
    let readings_at = |t: i64| -> Vec<Reading> {
        turbines
            .iter()
            .enumerate()
            .map(|(d, m)| {
                let r = m.observe(t);
                Reading {
                    device: d,
                    samples: VARS
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            (
                                i,
                                Sample {
                                    ts_ms: t,
                                    value: r.field(v).unwrap_or(f64::NAN),
                                    quality: Quality::Good,
                                },
                            )
                        })
                        .collect(),
                }
            })
            .collect()
    };
    // Warm-up: fill every window.
    for s in 0..length + 1 {
        for r in readings_at(T0 + s * 1000) {
            engine.on_reading(&cfg, &r);
        }
    }
    let scored_before = registry
        .counters
        .windows_scored
        .load(std::sync::atomic::Ordering::Relaxed);
    let (mut busy_wall, mut busy_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut events = 0usize;
    for s in 0..args.seconds {
        let batch = readings_at(T0 + (length + 1 + s) * 1000);
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
    let per_s = |d: Duration| d.as_secs_f64() / args.seconds as f64;
    println!(
        "{} assets x 8 points at 1 s, {label} (step {step}): {} windows scored in {} s of sample time ({:.0}/s), {events} events; \
         CPU {:.2} ms per second of data = {:.2} % of one core (wall {:.2} ms = {:.2} %)",
        args.assets,
        scored,
        args.seconds,
        scored as f64 / args.seconds as f64,
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
    latency(&args)?;
    cpu(&args, &args.model, "model as shipped")?;
    // The same network scoring every asset every second.
    let dir = tempfile::tempdir()?;
    let onnx = dir.path().join("every-second.onnx");
    std::fs::copy(&args.model, &onnx)?;
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(args.model.with_extension("json"))?)?;
    meta["window"]["step"] = 1.into();
    std::fs::write(onnx.with_extension("json"), serde_json::to_vec(&meta)?)?;
    cpu(&args, &onnx, "every asset scored every second")?;
    Ok(())
}
