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
    /// Number of stations. With more than one, station i (from 0) publishes
    /// to PREFIX-i/weather as client CLIENT_ID-i with seed SEED+i.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
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
    if args.count == 0 {
        return Err(SimError::InvalidConfig("--count must be at least 1".into()));
    }
    let secs = |s: Option<u64>| s.map(Duration::from_secs);
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("dcmms-sim-wx-{}", args.seed));
    let shutdown = CancellationToken::new();
    let mut stations = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let (client_id, topic_prefix, seed) = if args.count == 1 {
            (client_id.clone(), args.topic_prefix.clone(), args.seed)
        } else {
            (
                format!("{client_id}-{i}"),
                format!("{}-{i}", args.topic_prefix.trim_end_matches('/')),
                args.seed.wrapping_add(i as u64),
            )
        };
        let cfg = StationConfig {
            host: host.clone(),
            port,
            client_id,
            topic_prefix,
            interval: Duration::from_millis(args.interval_ms),
            model: WeatherModel::new(
                SiteModel {
                    latitude_deg: args.latitude,
                    longitude_deg: args.longitude,
                    seed,
                    ..SiteModel::default()
                },
                seed,
            ),
            clock: SimClock::realtime(),
            faults: Faults {
                garbage_every: args.garbage_every,
                outage_every: secs(args.outage_every_s),
                outage_for: Duration::from_secs(args.outage_for_s),
                disconnect_every: secs(args.disconnect_every_s),
            },
        };
        let station = start_station(cfg, shutdown.clone())?;
        println!(
            "weather station: publishing to {} on {} every {} ms (QoS 1)",
            station.topic, args.broker, args.interval_ms
        );
        stations.push(station);
    }
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    let (mut good, mut bad, mut acked) = (0, 0, 0);
    for station in stations {
        let stats = station.stats.clone();
        station.wait().await;
        good += stats.published.load(Ordering::Relaxed);
        bad += stats.garbage.load(Ordering::Relaxed);
        acked += stats.acknowledged.load(Ordering::Relaxed);
    }
    println!("published {good} good and {bad} garbage messages; {acked} acknowledged");
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
