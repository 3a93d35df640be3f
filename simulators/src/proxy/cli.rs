//! `dcmms-sim proxy`, and the fault flags that `dcmms-sim opcua` reuses to
//! put the same proxy in front of its own server.

use super::{FaultProxy, GoneMode, GoneSchedule, ProxyFaults};
use crate::SimError;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Link faults, each off unless given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProxyFaultArgs {
    /// Slow replies: deliver every server→client chunk this many
    /// milliseconds late.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Dropped connections: cut each connection (RST both ways) this many
    /// seconds after it opened.
    #[arg(long)]
    pub drop_every_s: Option<u64>,
    /// Garbage: write 1–64 random bytes into the server→client stream this
    /// often (seconds).
    #[arg(long)]
    pub garbage_every_s: Option<u64>,
    /// Gone: the device disappears for this many seconds...
    #[arg(long, requires = "gone_every_s")]
    pub gone_for_s: Option<u64>,
    /// ...every this many seconds (must exceed --gone-for-s).
    #[arg(long, requires = "gone_for_s")]
    pub gone_every_s: Option<u64>,
    /// While gone, let open connections go silent and accept new ones
    /// without ever answering (power cut, hung device) instead of resetting
    /// and refusing them (a switched-off one).
    #[arg(long)]
    pub gone_blackhole: bool,
}

fn positive(name: &str, v: Option<u64>) -> Result<Option<Duration>, SimError> {
    match v {
        Some(0) => Err(SimError::InvalidConfig(format!(
            "--{name} must be positive"
        ))),
        Some(n) => Ok(Some(Duration::from_secs(n))),
        None => Ok(None),
    }
}

impl ProxyFaultArgs {
    /// Whether any fault flag was given (then a proxy is needed at all).
    pub fn any(&self) -> bool {
        self.delay_ms.is_some()
            || self.drop_every_s.is_some()
            || self.garbage_every_s.is_some()
            || self.gone_for_s.is_some()
    }

    /// The standing faults, and the gone schedule if one was asked for.
    pub fn faults(&self) -> Result<(ProxyFaults, Option<GoneSchedule>), SimError> {
        if self.delay_ms == Some(0) {
            return Err(SimError::InvalidConfig(
                "--delay-ms must be positive".into(),
            ));
        }
        let faults = ProxyFaults {
            delay: self.delay_ms.map(Duration::from_millis),
            drop_every: positive("drop-every-s", self.drop_every_s)?,
            garbage_every: positive("garbage-every-s", self.garbage_every_s)?,
            gone: None,
        };
        let schedule = match (
            positive("gone-for-s", self.gone_for_s)?,
            positive("gone-every-s", self.gone_every_s)?,
        ) {
            (Some(down_for), Some(every)) if every > down_for => Some(GoneSchedule {
                every,
                down_for,
                mode: if self.gone_blackhole {
                    GoneMode::Blackhole
                } else {
                    GoneMode::Refuse
                },
            }),
            (Some(_), Some(_)) => {
                return Err(SimError::InvalidConfig(
                    "--gone-every-s must be larger than --gone-for-s".into(),
                ));
            }
            _ => None,
        };
        Ok((faults, schedule))
    }

    /// Prints what is injected, for the person at the terminal.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ms) = self.delay_ms {
            parts.push(format!("replies {ms} ms late"));
        }
        if let Some(s) = self.drop_every_s {
            parts.push(format!("connections cut after {s} s"));
        }
        if let Some(s) = self.garbage_every_s {
            parts.push(format!("garbage every {s} s"));
        }
        if let (Some(f), Some(e)) = (self.gone_for_s, self.gone_every_s) {
            let how = if self.gone_blackhole {
                "hung"
            } else {
                "refusing"
            };
            parts.push(format!("gone ({how}) for {f} s every {e} s"));
        }
        if parts.is_empty() {
            "no faults".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Address clients connect to.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The real device, host:port.
    #[arg(long)]
    pub upstream: String,
    #[command(flatten)]
    pub faults: ProxyFaultArgs,
}

/// Proxies until Ctrl-C.
pub async fn run(args: ProxyArgs) -> Result<(), SimError> {
    let (faults, schedule) = args.faults.faults()?;
    let shutdown = CancellationToken::new();
    let proxy =
        FaultProxy::start_with_shutdown(args.listen, args.upstream.clone(), faults, &shutdown)
            .await?;
    println!(
        "fault proxy {} -> {}: {}",
        proxy.addr(),
        args.upstream,
        args.faults.describe()
    );
    if let Some(s) = schedule {
        tokio::spawn(s.run(proxy.control(), shutdown.clone()));
    }
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    proxy.wait().await;
    Ok(())
}
