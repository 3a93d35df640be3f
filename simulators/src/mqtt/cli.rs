//! `dcmms-sim mqtt`: the weather station on the command line.

use super::{Faults, StationConfig, WeatherModel, start_station};
use crate::SimError;
use crate::modbus::SimClock;
use crate::solar::SiteModel;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct MqttArgs {
    /// Broker address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// Messages go to PREFIX/weather.
    #[arg(long, default_value = "site/wx1")]
    pub topic_prefix: String,
    /// Publishing interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Seed of the weather (clouds, temperatures, wind).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// MQTT client id (default: dcmms-sim-wx-<seed>).
    #[arg(long)]
    pub client_id: Option<String>,
    /// Site latitude in degrees (default: Bhadla Solar Park).
    #[arg(long, default_value_t = 27.54, allow_negative_numbers = true)]
    pub latitude: f64,
    /// Site longitude in degrees (default: Bhadla Solar Park).
    #[arg(long, default_value_t = 71.92, allow_negative_numbers = true)]
    pub longitude: f64,
    /// Fault: every Nth message is garbage (0 = never).
    #[arg(long, default_value_t = 0)]
    pub garbage_every: u32,
    /// Fault: every this many seconds the station stops publishing...
    #[arg(long)]
    pub outage_every_s: Option<u64>,
    /// ...for this many seconds.
    #[arg(long, default_value_t = 10)]
    pub outage_for_s: u64,
    /// Fault: every this many seconds drop the broker connection abruptly.
    #[arg(long)]
    pub disconnect_every_s: Option<u64>,
}

fn broker(s: &str) -> Result<(String, u16), SimError> {
    let bad = || SimError::InvalidConfig(format!("--broker {s:?} is not HOST:PORT"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// Publishes until Ctrl-C.
pub async fn run(args: MqttArgs) -> Result<(), SimError> {
    let (host, port) = broker(&args.broker)?;
    let secs = |s: Option<u64>| s.map(Duration::from_secs);
    let cfg = StationConfig {
        host,
        port,
        client_id: args
            .client_id
            .unwrap_or_else(|| format!("dcmms-sim-wx-{}", args.seed)),
        topic_prefix: args.topic_prefix,
        interval: Duration::from_millis(args.interval_ms),
        model: WeatherModel::new(
            SiteModel {
                latitude_deg: args.latitude,
                longitude_deg: args.longitude,
                seed: args.seed,
                ..SiteModel::default()
            },
            args.seed,
        ),
        clock: SimClock::realtime(),
        faults: Faults {
            garbage_every: args.garbage_every,
            outage_every: secs(args.outage_every_s),
            outage_for: Duration::from_secs(args.outage_for_s),
            disconnect_every: secs(args.disconnect_every_s),
        },
    };
    let shutdown = CancellationToken::new();
    let station = start_station(cfg, shutdown.clone())?;
    println!(
        "weather station: publishing to {} on {} every {} ms (QoS 1)",
        station.topic, args.broker, args.interval_ms
    );
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    let stats = station.stats.clone();
    station.wait().await;
    println!(
        "published {} good and {} garbage messages; {} acknowledged",
        stats.published.load(Ordering::Relaxed),
        stats.garbage.load(Ordering::Relaxed),
        stats.acknowledged.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn broker_address_is_parsed_or_rejected() {
        assert_eq!(
            broker("127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert_eq!(broker("[::1]:1884").unwrap(), ("::1".into(), 1884));
        for bad in ["127.0.0.1", ":1883", "h:0", "h:x"] {
            assert!(broker(bad).is_err(), "{bad}");
        }
    }
}
