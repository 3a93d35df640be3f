//! Command-line pieces of `dcmms-sim modbus` (fault flags) and
//! `dcmms-sim modbus-rtu`, kept in the library so the binary stays thin.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::rtu::{RtuConfig, start_rtu};
use super::{Fault, FaultPlan, Fleet, SimClock};
use crate::SimError;
use crate::solar::SiteModel;

/// Fault injection flags.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Inject a fault: none, slow=MS, drop, exception=CODE (4 = server
    /// device failure), garbage or gone.
    #[arg(long, default_value = "none")]
    pub fault: Fault,
    /// Device index the fault applies to (repeatable; default: every device).
    #[arg(long = "fault-device")]
    pub fault_devices: Vec<usize>,
    /// Chance per request that the fault strikes (0..1).
    #[arg(long, default_value_t = 1.0)]
    pub fault_probability: f64,
    /// Start the fault this long after start-up.
    #[arg(long, default_value_t = 0)]
    pub fault_after_ms: u64,
    /// Clear the fault after this long (0 = keep it).
    #[arg(long, default_value_t = 0)]
    pub fault_for_ms: u64,
}

impl FaultArgs {
    fn plan(&self) -> FaultPlan {
        FaultPlan {
            fault: self.fault,
            probability: self.fault_probability,
        }
    }

    /// Applies the flags to a running fleet (in the background when delayed
    /// or limited in time).
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] for an unknown device or a bad
    /// probability.
    pub fn apply(&self, fleet: &Fleet, shutdown: &CancellationToken) -> Result<(), SimError> {
        if self.fault == Fault::None {
            return Ok(());
        }
        let targets: Vec<Option<usize>> = if self.fault_devices.is_empty() {
            vec![None]
        } else {
            self.fault_devices.iter().copied().map(Some).collect()
        };
        // Validate now, so a typo fails at start-up and not later.
        for t in &targets {
            fleet.set_fault(*t, FaultPlan::default())?;
        }
        if !(0.0..=1.0).contains(&self.fault_probability) {
            return Err(SimError::InvalidConfig(
                "--fault-probability must be within 0..=1".into(),
            ));
        }
        let (plan, after, dur) = (
            self.plan(),
            Duration::from_millis(self.fault_after_ms),
            Duration::from_millis(self.fault_for_ms),
        );
        let (fleet, shutdown) = (fleet.fault_switch(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(after) => {}
            }
            for t in &targets {
                let _ = fleet.set_fault(*t, plan);
            }
            tracing::info!(fault = ?plan.fault, devices = ?targets, "fault injected");
            if dur.is_zero() {
                return;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(dur) => {}
            }
            for t in &targets {
                let _ = fleet.set_fault(*t, FaultPlan::default());
            }
            tracing::info!("fault cleared");
        });
        Ok(())
    }
}

/// `dcmms-sim modbus-rtu`: one inverter on a serial line.
#[derive(Debug, Clone, Args)]
pub struct RtuArgs {
    /// The serial device, e.g. /dev/ttyUSB0 or one end of
    /// `socat -d -d pty,raw,echo=0 pty,raw,echo=0`.
    #[arg(long)]
    pub path: String,
    #[arg(long, default_value_t = 9600)]
    pub baud_rate: u32,
    /// none, even or odd.
    #[arg(long, default_value = "none")]
    pub parity: String,
    #[arg(long, default_value_t = 1)]
    pub unit_id: u8,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// AC rating in kW.
    #[arg(long, default_value_t = 100.0)]
    pub rated_kw: f64,
    /// Freeze the simulation clock at this RFC 3339 time.
    #[arg(long)]
    pub at: Option<String>,
    /// none, slow=MS or exception=CODE; drop, garbage and gone mean no reply.
    #[arg(long, default_value = "none")]
    pub fault: Fault,
    #[arg(long, default_value_t = 1.0)]
    pub fault_probability: f64,
}

/// Runs `dcmms-sim modbus-rtu` until Ctrl-C.
///
/// # Errors
/// Invalid flags or a port that cannot be opened.
pub async fn run_rtu(args: RtuArgs) -> Result<(), SimError> {
    let parity = match args.parity.as_str() {
        "none" => tokio_serial::Parity::None,
        "even" => tokio_serial::Parity::Even,
        "odd" => tokio_serial::Parity::Odd,
        p => {
            return Err(SimError::InvalidConfig(format!(
                "--parity {p:?}: use none, even or odd"
            )));
        }
    };
    let clock = match &args.at {
        None => SimClock::realtime(),
        Some(s) => SimClock::frozen(
            chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    SimError::InvalidConfig(format!("--at {s:?} is not an RFC 3339 time"))
                })?
                .timestamp_millis(),
        ),
    };
    if !(0.0..=1.0).contains(&args.fault_probability) {
        return Err(SimError::InvalidConfig(
            "--fault-probability must be within 0..=1".into(),
        ));
    }
    let shutdown = CancellationToken::new();
    let dev = start_rtu(
        RtuConfig {
            baud_rate: args.baud_rate,
            parity,
            unit_id: args.unit_id,
            seed: args.seed,
            site: SiteModel {
                seed: args.seed,
                ..SiteModel::default()
            },
            rated_ac_w: args.rated_kw * 1000.0,
            clock,
            ..RtuConfig::new(&args.path)
        },
        shutdown.clone(),
    )
    .await?;
    dev.set_fault(FaultPlan {
        fault: args.fault,
        probability: args.fault_probability,
    });
    println!(
        "inverter: SunSpec model 1+103 at 40000, Modbus RTU {} {} baud, unit id {}",
        args.path, args.baud_rate, args.unit_id
    );
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    dev.wait().await;
    Ok(())
}
