//! Error type of the simulator library.

use std::net::SocketAddr;

use crate::sunspec::ReadError;

/// Errors of the simulator library.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listening socket could not be bound.
    #[error("cannot bind Modbus listener on {addr}: {source}")]
    Bind {
        /// The address that was tried.
        addr: SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `base_port + index` does not fit a port number.
    #[error("port out of range: base port {base} + device index {index} > 65535")]
    PortOverflow {
        /// Configured base port.
        base: u16,
        /// Device index.
        index: usize,
    },
    /// The fleet configuration is invalid.
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    /// `SimClock::set` was called on a clock that follows the system clock.
    #[error("a real-time simulation clock cannot be set")]
    ClockNotSettable,
    /// A serial port could not be opened.
    #[error("cannot open serial port {path}: {source}")]
    Serial {
        /// The port's path.
        path: String,
        /// The underlying error.
        #[source]
        source: tokio_serial::Error,
    },
    /// A register read outside the map.
    #[error(transparent)]
    Read(#[from] ReadError),
}
