//! `dcmms-sim`: field-device simulators for dCMMS.
//!
//! `dcmms-sim modbus` serves a fleet of SunSpec three-phase inverters over
//! Modbus TCP, one port per inverter, until Ctrl-C. `dcmms-sim mqtt`
//! publishes a weather station's readings to an MQTT broker. `dcmms-sim
//! opcua` serves a wind turbine over OPC UA (built with feature `opcua`).
//! `dcmms-sim dataset` writes the physical model's point values, with
//! injected faults and a label column, as CSV (offline, no network).
//! `dcmms-sim proxy` puts link faults in front of any TCP device.
//! `dcmms-sim dnp3` serves a substation revenue meter and recloser as a
//! DNP3 outstation (built with feature `dnp3`; the `dnp3` crate is licensed
//! for non-commercial, non-production use only, docs/licensing.md).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use dcmms_simulators::bess::faults::BessFaultKind;
use dcmms_simulators::modbus::{DeviceKind, FleetConfig, SimClock, start_fleet};
use dcmms_simulators::solar::SiteModel;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "dcmms-sim",
    version,
    about = "Field-device simulators for dCMMS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve simulated SunSpec (model 1 + 103) PV inverters over Modbus TCP.
    Modbus(ModbusArgs),
    /// Serve one simulated SunSpec inverter over Modbus RTU on a serial line.
    ModbusRtu(dcmms_simulators::modbus::cli::RtuArgs),
    /// Publish a simulated weather station's readings as JSON over MQTT.
    Mqtt(dcmms_simulators::mqtt::cli::MqttArgs),
    /// Write an offline dataset (CSV) from a simulator's physical model,
    /// with injected faults labelled per row.
    Dataset(DatasetArgs),
    /// Forward TCP to a device, injecting link faults (slow replies, cut
    /// connections, garbage bytes, a device that goes away and returns).
    Proxy(dcmms_simulators::proxy::cli::ProxyArgs),
    /// Serve a simulated wind turbine over OPC UA.
    #[cfg(feature = "opcua")]
    Opcua(dcmms_simulators::opcua::cli::OpcuaArgs),
    /// (Not in this build: rebuild with `--features opcua`.)
    #[cfg(not(feature = "opcua"))]
    #[command(disable_help_flag = true)]
    Opcua {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
    /// Serve a simulated 33 kV substation revenue meter and recloser as a
    /// DNP3 outstation (licence-restricted test build).
    #[cfg(feature = "dnp3")]
    Dnp3(dcmms_simulators::dnp3::cli::Dnp3Args),
    /// (Not in this build: rebuild with `--features dnp3`.)
    #[cfg(not(feature = "dnp3"))]
    #[command(disable_help_flag = true)]
    Dnp3 {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct ModbusArgs {
    #[command(flatten)]
    faults: dcmms_simulators::modbus::cli::FaultArgs,
    /// What to serve: SunSpec inverters, or BESS racks (the BMS register
    /// map of dcmms_simulators::bess::bms at 40000; rack i is the rack of
    /// seed --seed + i; --rated-kw and the site flags do not apply).
    #[arg(long, value_enum, default_value_t = ModbusDevice::Inverter)]
    device: ModbusDevice,
    /// Number of inverters.
    #[arg(long, default_value_t = 3)]
    count: usize,
    /// Port of the first inverter; inverter i listens on base-port + i
    /// (0 = an ephemeral port each).
    #[arg(long, default_value_t = 5020)]
    base_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Modbus unit id the inverters answer to (others get exception 0x0B).
    #[arg(long, default_value_t = 1)]
    unit_id: u8,
    /// Seed of the weather and of the per-inverter variation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Site latitude in degrees (default: Bhadla Solar Park).
    #[arg(long, default_value_t = 27.54, allow_negative_numbers = true)]
    latitude: f64,
    /// Site longitude in degrees (default: Bhadla Solar Park).
    #[arg(long, default_value_t = 71.92, allow_negative_numbers = true)]
    longitude: f64,
    /// AC rating of each inverter in kW.
    #[arg(long, default_value_t = 100.0)]
    rated_kw: f64,
    /// Simulation start time (RFC 3339, e.g. 2026-06-21T06:30:00Z). Alone it
    /// freezes the clock at that instant; with --speed the clock runs from it.
    #[arg(long)]
    at: Option<String>,
    /// Run the simulation clock this many times faster than real time
    /// (from --at, or from now).
    #[arg(long)]
    speed: Option<f64>,
    /// Register image update interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    update_ms: u64,
    /// Disable clouds (always clear sky).
    #[arg(long)]
    clear_sky: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModbusDevice {
    Inverter,
    Bess,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AssetClass {
    /// The wind turbine of `dcmms-sim opcua`.
    Wind,
    /// Inverter 0 of the PV fleet of `dcmms-sim modbus` (100 kW unless
    /// --rated-kw says otherwise), Bhadla site model.
    Pv,
    /// One BESS rack (LFP, 16 × 15 cells, 280 Ah), the rack of the seed;
    /// --rated-kw does not apply.
    Bess,
}

#[derive(Debug, Args)]
struct DatasetArgs {
    /// Which physical model.
    #[arg(long, value_enum)]
    asset_class: AssetClass,
    /// Seed of the weather (wind, PV) or of the rack (BESS).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Length in days (fractions allowed).
    #[arg(long, default_value_t = 1.0)]
    days: f64,
    /// First row's time (RFC 3339); default 2026-01-01T00:00:00Z.
    #[arg(long)]
    start: Option<String>,
    /// Row step in milliseconds.
    #[arg(long, default_value_t = 1000)]
    step_ms: u64,
    /// Rated power in kW (default: 3000 for wind, 100 for PV).
    #[arg(long)]
    rated_kw: Option<f64>,
    /// Fault, `KIND@START_S[-END_S]` in seconds after the start (wind:
    /// gearbox_overheat, pitch_misalignment, bearing_creep; PV:
    /// string_outage, over_temperature, soiling_drift, failing_fan,
    /// insulation_fault; BESS: cell_imbalance, hot_rack). Repeatable.
    #[arg(long = "fault", value_name = "KIND@START_S[-END_S]")]
    faults: Vec<String>,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

fn run_dataset(args: DatasetArgs) -> Result<()> {
    use dcmms_simulators::bess::faults::BessFault;
    use dcmms_simulators::dataset::{BessDataset, DEFAULT_START_MS, PvDataset, WindDataset};
    use dcmms_simulators::opcua::{TurbineModel, WindFault};
    use dcmms_simulators::solar::faults::PvFault;
    use std::io::Write;
    if !(args.days.is_finite() && args.days > 0.0) {
        bail!("--days must be a positive number");
    }
    if args.step_ms == 0 {
        bail!("--step-ms must be positive");
    }
    if args.rated_kw.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("--rated-kw must be a positive number");
    }
    let start_ms = match &args.start {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .with_context(|| format!("--start {s:?} is not an RFC 3339 time"))?,
        None => DEFAULT_START_MS,
    };
    let duration_ms = (args.days * 86_400_000.0) as i64;
    let step_ms = args.step_ms as i64;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let rows = match args.asset_class {
        AssetClass::Wind => {
            let faults = args
                .faults
                .iter()
                .map(|f| WindFault::parse(f, start_ms))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let rated_kw = args.rated_kw.unwrap_or(3000.0);
            WindDataset {
                model: TurbineModel::new(args.seed, rated_kw).with_faults(faults),
                start_ms,
                duration_ms,
                step_ms,
            }
            .write_csv(&mut out)?
        }
        AssetClass::Pv => {
            let faults = args
                .faults
                .iter()
                .map(|f| PvFault::parse(f, start_ms))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            PvDataset {
                seed: args.seed,
                rated_ac_w: args.rated_kw.unwrap_or(100.0) * 1000.0,
                faults,
                start_ms,
                duration_ms,
                step_ms,
            }
            .write_csv(&mut out)?
        }
        AssetClass::Bess => {
            if args.rated_kw.is_some() {
                bail!("--rated-kw does not apply to --asset-class bess");
            }
            let faults = args
                .faults
                .iter()
                .map(|f| BessFault::parse(f, start_ms))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            BessDataset {
                seed: args.seed,
                faults,
                start_ms,
                duration_ms,
                step_ms,
            }
            .write_csv(&mut out)?
        }
    };
    out.flush()?;
    eprintln!("{rows} rows");
    Ok(())
}

fn clock_from(args: &ModbusArgs) -> Result<SimClock> {
    let at = args
        .at
        .as_deref()
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .with_context(|| format!("--at {s:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        bail!("--speed must be a positive number, got {speed}");
    }
    Ok(match (at, args.speed) {
        (Some(t), None) => SimClock::frozen(t),
        (Some(t), Some(speed)) => SimClock::accelerated(t, speed),
        (None, Some(speed)) => SimClock::accelerated(chrono::Utc::now().timestamp_millis(), speed),
        (None, None) => SimClock::realtime(),
    })
}

async fn run_modbus(args: ModbusArgs) -> Result<()> {
    let clock = clock_from(&args)?;
    if args.update_ms == 0 {
        bail!("--update-ms must be positive");
    }
    let cfg = FleetConfig {
        count: args.count,
        bind: args.bind,
        base_port: args.base_port,
        unit_id: args.unit_id,
        seed: args.seed,
        site: SiteModel {
            latitude_deg: args.latitude,
            longitude_deg: args.longitude,
            seed: args.seed,
            clouds: !args.clear_sky,
            ..SiteModel::default()
        },
        rated_ac_w: args.rated_kw * 1000.0,
        clock,
        update_interval: Duration::from_millis(args.update_ms),
        device: match args.device {
            ModbusDevice::Inverter => DeviceKind::Inverter,
            ModbusDevice::Bess => DeviceKind::BessRack,
        },
    };
    // A bad --fault flag fails before anything listens.
    if args.device == ModbusDevice::Bess {
        args.faults
            .split_as::<BessFaultKind>(0)
            .context("--fault flags")?;
    } else {
        args.faults.split(0).context("--fault flags")?;
    }
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(cfg, shutdown.clone())
        .await
        .context("starting the inverter fleet")?;
    let inverter_faults = args
        .faults
        .apply(&fleet, &shutdown)
        .context("--fault flags")?;
    if args.device == ModbusDevice::Bess {
        for (i, addr) in fleet.addrs().iter().enumerate() {
            println!(
                "BESS rack {i} (seed {}): BMS map at 40000 (dcmms_simulators::bess::bms), Modbus TCP {addr}, unit id {}",
                args.seed.wrapping_add(i as u64),
                fleet.unit_id()
            );
        }
        for f in &args.faults.faults {
            if f.contains('@') {
                println!("  rack fault {f} (seconds of simulation time after start-up)");
            }
        }
    }
    let inverters = if args.device == ModbusDevice::Inverter {
        fleet.addrs()
    } else {
        Vec::new()
    };
    for (i, addr) in inverters.iter().enumerate() {
        println!(
            "inverter {i}: SunSpec model 1+103 at 40000, Modbus TCP {addr}, unit id {}, {} kW",
            fleet.unit_id(),
            args.rated_kw
        );
    }
    for f in &inverter_faults {
        println!(
            "  fault {} from {} ms{} (simulation time) on {}",
            f.kind.name(),
            f.start_ms,
            f.end_ms.map(|e| format!(" to {e} ms")).unwrap_or_default(),
            if args.faults.fault_devices.is_empty() {
                "every inverter".to_string()
            } else {
                format!("inverters {:?}", args.faults.fault_devices)
            }
        );
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("Ctrl-C received, shutting down");
    shutdown.cancel();
    fleet.wait().await;
    tracing::info!("all simulators stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Modbus(args) => run_modbus(args).await,
        Command::ModbusRtu(args) => Ok(dcmms_simulators::modbus::cli::run_rtu(args).await?),
        Command::Mqtt(args) => Ok(dcmms_simulators::mqtt::cli::run(args).await?),
        Command::Dataset(args) => run_dataset(args),
        Command::Proxy(args) => Ok(dcmms_simulators::proxy::cli::run(args).await?),
        #[cfg(feature = "opcua")]
        Command::Opcua(args) => Ok(dcmms_simulators::opcua::cli::run(args).await?),
        #[cfg(not(feature = "opcua"))]
        Command::Opcua { .. } => bail!(
            "this dcmms-sim was built without OPC UA: \
             cargo run -p dcmms-simulators --features opcua --bin dcmms-sim -- opcua …"
        ),
        #[cfg(feature = "dnp3")]
        Command::Dnp3(args) => Ok(dcmms_simulators::dnp3::cli::run(args).await?),
        #[cfg(not(feature = "dnp3"))]
        Command::Dnp3 { .. } => bail!(
            "this dcmms-sim was built without DNP3 (licence-restricted, see docs/licensing.md): \
             cargo run -p dcmms-simulators --features dnp3 --bin dcmms-sim -- dnp3 …"
        ),
    }
}
