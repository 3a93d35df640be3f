//! Command-line pieces of `dcmms-sim modbus` (fault flags: link faults and
//! inverter faults) and `dcmms-sim modbus-rtu`, kept in the library so the
//! binary stays thin.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::rtu::{RtuConfig, start_rtu};
use super::{Fault, FaultPlan, Fleet, SimClock};
use crate::SimError;
use crate::bess::faults::BessFaultKind;
use crate::faults::FaultKind;
use crate::solar::SiteModel;
use crate::solar::faults::{PvFault, PvFaultKind};

/// Fault injection flags.
#[derive(Debug, Clone, Args)]
pub struct FaultArgs {
    /// Inject a fault (repeatable). A link fault, at most one: none,
    /// slow=MS, drop, exception=CODE (4 = server device failure), garbage or
    /// gone. Or an inverter fault, `KIND@START_S[-END_S]` in seconds of
    /// simulation time after start-up: string_outage, over_temperature,
    /// soiling_drift, failing_fan, insulation_fault (e.g.
    /// `failing_fan@600` or `string_outage@60-3600`); with `--device bess`
    /// a rack fault: cell_imbalance, hot_rack.
    #[arg(long = "fault", value_name = "FAULT")]
    pub faults: Vec<String>,
    /// Device index the faults apply to (repeatable; default: every device).
    #[arg(long = "fault-device")]
    pub fault_devices: Vec<usize>,
    /// Chance per request that the link fault strikes (0..1).
    #[arg(long, default_value_t = 1.0)]
    pub fault_probability: f64,
    /// Start the link fault this long after start-up.
    #[arg(long, default_value_t = 0)]
    pub fault_after_ms: u64,
    /// Clear the link fault after this long (0 = keep it).
    #[arg(long, default_value_t = 0)]
    pub fault_for_ms: u64,
}

impl FaultArgs {
    /// The link fault and the inverter faults of the `--fault` flags, the
    /// latter with start and end `base_ms` + their seconds.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] for a flag that is neither, or a second
    /// link fault.
    pub fn split(&self, base_ms: i64) -> Result<(Fault, Vec<PvFault>), SimError> {
        self.split_as::<PvFaultKind>(base_ms)
    }

    /// [`FaultArgs::split`] with the device faults of kind `K` (e.g.
    /// [`BessFaultKind`] for a fleet of BESS racks).
    ///
    /// # Errors
    /// As [`FaultArgs::split`].
    pub fn split_as<K: FaultKind>(
        &self,
        base_ms: i64,
    ) -> Result<(Fault, Vec<crate::faults::Fault<K>>), SimError> {
        let mut link: Option<Fault> = None;
        let mut inverter = Vec::new();
        for f in &self.faults {
            if f.contains('@') {
                inverter.push(
                    crate::faults::Fault::<K>::parse(f, base_ms)
                        .map_err(SimError::InvalidConfig)?,
                );
                continue;
            }
            let parsed: Fault = f
                .parse()
                .map_err(|e: super::FaultParseError| SimError::InvalidConfig(e.to_string()))?;
            if link.replace(parsed).is_some() {
                return Err(SimError::InvalidConfig(format!(
                    "--fault {f:?}: only one link fault (none, slow=MS, drop, …) at a time"
                )));
            }
        }
        Ok((link.unwrap_or_default(), inverter))
    }

    fn targets(&self) -> Vec<Option<usize>> {
        if self.fault_devices.is_empty() {
            vec![None]
        } else {
            self.fault_devices.iter().copied().map(Some).collect()
        }
    }

    /// Applies the flags to a running fleet: inverter faults at once (each
    /// active from its own start, on the fleet's clock, counted from now),
    /// the link fault in the background when delayed or limited in time.
    /// Returns the inverter faults (none for a fleet of BESS racks; their
    /// faults are set with the same flags).
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] for a bad flag, an unknown device or a
    /// bad probability.
    pub fn apply(
        &self,
        fleet: &Fleet,
        shutdown: &CancellationToken,
    ) -> Result<Vec<PvFault>, SimError> {
        let base = fleet.clock().now_ms();
        let targets = self.targets();
        let (fault, inverter) = if fleet.is_bess() {
            // A rack fleet: the `KIND@…` flags are rack faults.
            let (fault, rack) = self.split_as::<BessFaultKind>(base)?;
            if !rack.is_empty() {
                for t in &targets {
                    fleet.set_bess_faults(*t, &rack)?;
                }
            }
            (fault, Vec::new())
        } else {
            let (fault, inverter) = self.split(base)?;
            if !inverter.is_empty() {
                for t in &targets {
                    fleet.set_inverter_faults(*t, &inverter)?;
                }
            }
            (fault, inverter)
        };
        if fault == Fault::None {
            return Ok(inverter);
        }
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
            FaultPlan {
                fault,
                probability: self.fault_probability,
            },
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
        Ok(inverter)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::solar::faults::PvFaultKind;
    use std::time::Duration;

    fn args(faults: &[&str]) -> FaultArgs {
        FaultArgs {
            faults: faults.iter().map(|f| f.to_string()).collect(),
            fault_devices: Vec::new(),
            fault_probability: 1.0,
            fault_after_ms: 0,
            fault_for_ms: 0,
        }
    }

    #[test]
    fn fault_flags_split_into_one_link_fault_and_inverter_faults() {
        let (link, inv) = args(&["slow=250", "string_outage@60", "failing_fan@10-20"])
            .split(1_000_000)
            .unwrap();
        assert_eq!(link, Fault::Slow(Duration::from_millis(250)));
        assert_eq!(inv.len(), 2);
        assert_eq!(
            (inv[0].kind, inv[0].start_ms, inv[0].end_ms),
            (PvFaultKind::StringOutage, 1_060_000, None)
        );
        assert_eq!(
            (inv[1].kind, inv[1].start_ms, inv[1].end_ms),
            (PvFaultKind::FailingFan, 1_010_000, Some(1_020_000))
        );
        assert_eq!(args(&[]).split(0).unwrap(), (Fault::None, Vec::new()));
        let two = args(&["drop", "gone"]).split(0).unwrap_err();
        assert!(two.to_string().contains("only one link fault"), "{two}");
        let wind = args(&["gearbox_overheat@1"]).split(0).unwrap_err();
        assert!(wind.to_string().contains("unknown kind"), "{wind}");
        assert!(args(&["sometimes"]).split(0).is_err());
    }
}
