//! Fault injection: what a misbehaving field device does instead of
//! answering.
//!
//! A [`FaultPlan`] is held per device in a `tokio::sync::watch` channel, so
//! tests and the CLI switch it at run time and the device's accept loop
//! notices [`Fault::Gone`] at once. Each request draws once against the
//! plan's probability; a hit applies the fault to that request only
//! (except `Gone`, which applies to the device until the plan changes).

use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_modbus::prelude::ExceptionCode;

/// One kind of misbehaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer after this delay (longer than the poller's timeout = a
    /// timeout; a late reply then arrives on a connection the poller should
    /// have dropped).
    Slow(Duration),
    /// Close the connection instead of answering.
    Drop,
    /// Answer with this Modbus exception.
    Exception(ExceptionCode),
    /// Write random bytes of the reply's length instead of the reply. The
    /// third byte (MBAP protocol id, high byte) is forced non-zero so the
    /// reply can never be mistaken for a valid frame.
    Garbage,
    /// The device is off: the port refuses connections and open connections
    /// are closed, until the plan changes (then it listens again on the same
    /// port).
    Gone,
}

/// A fault and how often it strikes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultPlan {
    pub fault: Fault,
    /// Chance per request, 0.0..=1.0 (`Gone` ignores it).
    pub probability: f64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            fault: Fault::None,
            probability: 1.0,
        }
    }
}

impl FaultPlan {
    /// `fault` on every request.
    #[must_use]
    pub fn always(fault: Fault) -> Self {
        Self {
            fault,
            probability: 1.0,
        }
    }

    /// Whether the next request is hit, drawing once.
    pub(crate) fn strikes(&self) -> bool {
        match self.fault {
            Fault::None => false,
            Fault::Gone => true,
            _ if self.probability >= 1.0 => true,
            _ if self.probability <= 0.0 || self.probability.is_nan() => false,
            _ => rand::random::<f64>() < self.probability,
        }
    }
}

/// Error parsing a fault specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fault {0:?}: use none, slow=MS, drop, exception=CODE (1-255, e.g. 4 = server device failure), garbage or gone"
)]
pub struct FaultParseError(pub String);

impl FromStr for Fault {
    type Err = FaultParseError;

    /// `none`, `slow=MS`, `drop`, `exception=CODE`, `garbage`, `gone`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FaultParseError(s.to_string());
        let (kind, arg) = match s.split_once('=') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("none", None) => Ok(Fault::None),
            ("drop", None) => Ok(Fault::Drop),
            ("garbage", None) => Ok(Fault::Garbage),
            ("gone", None) => Ok(Fault::Gone),
            ("slow", Some(ms)) => ms
                .parse::<u64>()
                .map(|ms| Fault::Slow(Duration::from_millis(ms)))
                .map_err(|_| bad()),
            ("exception", Some(code)) => match code.parse::<u8>() {
                Ok(c) if c > 0 => Ok(Fault::Exception(ExceptionCode::new(c))),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

/// What the stream does with the next reply written on it.
pub(crate) const REPLY_NORMAL: u8 = 0;
pub(crate) const REPLY_DROP: u8 = 1;
pub(crate) const REPLY_GARBAGE: u8 = 2;

/// A connection's transport with a switch the service sets per request:
/// tokio-modbus writes the reply through it, and the switch turns that
/// write into a closed connection or into garbage.
#[derive(Debug)]
pub(crate) struct FaultyStream<T> {
    inner: T,
    next_reply: Arc<AtomicU8>,
}

impl<T> FaultyStream<T> {
    pub(crate) fn new(inner: T, next_reply: Arc<AtomicU8>) -> Self {
        Self { inner, next_reply }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FaultyStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FaultyStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.next_reply.load(Ordering::SeqCst) {
            REPLY_DROP => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "fault injection: connection dropped",
            ))),
            REPLY_GARBAGE => {
                let mut junk: Vec<u8> = (0..buf.len()).map(|_| rand::random::<u8>()).collect();
                if let Some(b) = junk.get_mut(2) {
                    *b |= 0x80;
                }
                match Pin::new(&mut self.inner).poll_write(cx, &junk) {
                    Poll::Ready(Ok(n)) => {
                        self.next_reply.store(REPLY_NORMAL, Ordering::SeqCst);
                        Poll::Ready(Ok(n))
                    }
                    other => other,
                }
            }
            _ => Pin::new(&mut self.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse() {
        assert_eq!("drop".parse(), Ok(Fault::Drop));
        assert_eq!(
            "slow=250".parse(),
            Ok(Fault::Slow(Duration::from_millis(250)))
        );
        assert_eq!(
            "exception=4".parse(),
            Ok(Fault::Exception(ExceptionCode::ServerDeviceFailure))
        );
        assert_eq!("gone".parse(), Ok(Fault::Gone));
        assert!("exception=0".parse::<Fault>().is_err());
        assert!("slow".parse::<Fault>().is_err());
        assert!("smoke".parse::<Fault>().is_err());
    }

    #[test]
    fn probability_bounds_are_respected() {
        let never = FaultPlan {
            fault: Fault::Drop,
            probability: 0.0,
        };
        let always = FaultPlan::always(Fault::Drop);
        assert!((0..100).all(|_| !never.strikes()));
        assert!((0..100).all(|_| always.strikes()));
        assert!(!FaultPlan::default().strikes());
        let half = FaultPlan {
            fault: Fault::Drop,
            probability: 0.5,
        };
        let hits = (0..2000).filter(|_| half.strikes()).count();
        assert!((700..1300).contains(&hits), "{hits}");
    }
}
