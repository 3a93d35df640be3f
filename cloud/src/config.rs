//! Cloud configuration: defaults, then an optional TOML file, then `DCMMS_…`
//! environment variables, then command-line flags.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use thiserror::Error;

/// The commented example printed by `dcmms-cloud print-config`.
pub const EXAMPLE: &str = r#"# dcmms-cloud configuration. Every key is optional; shown are the defaults.
# Environment variables override the file: DCMMS_LISTEN, DCMMS_DATABASE_URL, ...
# (DATABASE_URL is honoured as well).

# Address of the HTTP API, /metrics and /healthz.
listen = "127.0.0.1:8080"

# sqlite://PATH (created if missing) or postgres://user:password@host:port/db
database_url = "sqlite://dcmms-data/cloud.sqlite"

# Largest accepted ingest request body, in bytes.
max_batch_bytes = 16777216

# Days of raw samples (and 1-minute rollups) to keep; older whole days are
# removed hourly (Postgres: their daily partitions are dropped). 0 keeps
# everything forever.
retention_days = 400
"#;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub max_batch_bytes: usize,
    /// Days of raw telemetry to keep; 0 = forever (see [`crate::retention`]).
    pub retention_days: u32,
}

impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("listen", &self.listen)
            .field("database_url", &crate::db::redact_url(&self.database_url))
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://dcmms-data/cloud.sqlite".into(),
            max_batch_bytes: 16 * 1024 * 1024,
            retention_days: 400,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(String),
    #[error("invalid configuration{}: {source}", file.as_ref().map(|f| format!(" in {f}")).unwrap_or_default())]
    Invalid {
        file: Option<String>,
        #[source]
        source: Box<figment::Error>,
    },
    #[error("invalid configuration: max_batch_bytes must be between 1 KiB and 64 MiB (got {0})")]
    BatchLimit(usize),
}

impl CloudConfig {
    /// Loads defaults, then `file`, then the environment.
    pub fn load(file: Option<&Path>) -> Result<CloudConfig, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(CloudConfig::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Missing(f.display().to_string()));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            fig = fig.merge(Serialized::default("database_url", url));
        }
        fig = fig.merge(Env::prefixed("DCMMS_").only(&[
            "listen",
            "database_url",
            "max_batch_bytes",
            "retention_days",
        ]));
        let cfg: CloudConfig = fig.extract().map_err(|e| ConfigError::Invalid {
            file: file.map(|f| f.display().to_string()),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1024..=dcmms_shared::wire::MAX_RAW_LEN).contains(&self.max_batch_bytes) {
            return Err(ConfigError::BatchLimit(self.max_batch_bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_to_the_defaults() {
        let cfg: CloudConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(cfg.listen, CloudConfig::default().listen);
        assert_eq!(cfg.database_url, CloudConfig::default().database_url);
        assert_eq!(cfg.max_batch_bytes, CloudConfig::default().max_batch_bytes);
        assert_eq!(cfg.retention_days, CloudConfig::default().retention_days);
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cloud.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let err = CloudConfig::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
        assert!(err.contains("cloud.toml"), "{err}");
    }

    #[test]
    fn debug_hides_the_database_password() {
        let cfg = CloudConfig {
            database_url: "postgres://u:topsecret@h/db".into(),
            ..CloudConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("topsecret"));
    }
}
