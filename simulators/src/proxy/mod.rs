//! A fault-injecting TCP proxy: one mechanism that makes any TCP field
//! device misbehave (OPC UA turbine, Modbus TCP inverter, MQTT broker)
//! without teaching each simulator's protocol stack to fail.
//!
//! The proxy sits between a driver and a healthy simulator and damages the
//! link, not the protocol: replies arrive late, connections are cut, random
//! bytes appear in the server→client stream, or the device disappears for a
//! while and comes back on the same port. Protocol-level faults (a Modbus
//! exception, an OPC UA Bad status) stay in the simulators, which know what
//! a well-formed wrong answer looks like.
//!
//! [`ProxyFaults`] lives in a `tokio::sync::watch` channel, so a test (or
//! the [`GoneSchedule`] of the CLI) switches faults while connections are
//! open and every connection sees the change at once.
//!
//! - `conn`: one proxied connection (the pumps and the cut).
//! - [`cli`]: `dcmms-sim proxy` and the fault flags other simulators reuse.

pub mod cli;
mod conn;

use crate::SimError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long the proxy waits for the upstream to accept a connection before
/// treating it as down (and closing the client's side).
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy does to the link. The default is a clean pass-through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyFaults {
    /// Slow replies: every server→client chunk is delivered this much
    /// later than it arrived (latency, not throughput: chunks do not queue
    /// behind each other's delay).
    pub delay: Option<Duration>,
    /// Dropped connections: each connection is cut (RST to both sides)
    /// this long after it opened or after the faults last changed.
    pub drop_every: Option<Duration>,
    /// Garbage: 1–64 random bytes are written into the server→client
    /// stream this often, between two chunks of real data.
    pub garbage_every: Option<Duration>,
    /// The device is gone: open connections are cut and new ones are not
    /// served until this is cleared.
    pub gone: Option<GoneMode>,
}

impl ProxyFaults {
    /// No fault at all.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether anything is injected.
    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// How a gone device looks from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoneMode {
    /// The port is closed: connection attempts are refused at once (a
    /// controller that is rebooting or switched off).
    #[default]
    Refuse,
    /// Open connections go silent and new ones are accepted but never
    /// answered (power lost or cable pulled: no FIN, no RST): the client
    /// has to notice by its own timeouts. When the device is back, those
    /// connections are reset.
    Blackhole,
}

/// What the proxy did so far, for tests that must prove a fault struck.
#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    cut: AtomicU64,
    garbage: AtomicU64,
    refused_periods: AtomicU64,
    upstream_failures: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyCounters {
    /// Client connections accepted and proxied (not those held while gone
    /// in blackhole mode).
    pub accepted: u64,
    /// Connections the proxy cut (drop, gone); not the ones either side
    /// closed itself.
    pub cut: u64,
    /// Garbage injections.
    pub garbage: u64,
    /// Times the port was closed because the device went away.
    pub refused_periods: u64,
    /// Client connections closed because the upstream did not accept.
    pub upstream_failures: u64,
}

/// Changes the faults of a running proxy; cheap to clone.
#[derive(Debug, Clone)]
pub struct ProxyControl {
    tx: watch::Sender<ProxyFaults>,
    stats: Arc<Stats>,
}

impl ProxyControl {
    /// Replaces the faults; open connections see it at once.
    pub fn set(&self, faults: ProxyFaults) {
        self.tx.send_replace(faults);
    }

    /// Changes some of the faults.
    pub fn update(&self, f: impl FnOnce(&mut ProxyFaults)) {
        self.tx.send_modify(f);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.set(ProxyFaults::none());
    }

    /// The faults in force.
    pub fn faults(&self) -> ProxyFaults {
        *self.tx.borrow()
    }

    pub fn counters(&self) -> ProxyCounters {
        let s = &self.stats;
        ProxyCounters {
            accepted: s.accepted.load(Ordering::Relaxed),
            cut: s.cut.load(Ordering::Relaxed),
            garbage: s.garbage.load(Ordering::Relaxed),
            refused_periods: s.refused_periods.load(Ordering::Relaxed),
            upstream_failures: s.upstream_failures.load(Ordering::Relaxed),
        }
    }
}

/// The proxy's entry point.
#[derive(Debug)]
pub struct FaultProxy;

/// A running proxy: where it listens, how to change its faults, how to stop
/// it. Dropping it together with every [`ProxyControl`] also stops the
/// proxy: a link whose faults nobody can clear any more is of no use.
#[derive(Debug)]
pub struct ProxyHandle {
    addr: SocketAddr,
    control: ProxyControl,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `listen` (port 0: an ephemeral port, see
    /// [`ProxyHandle::addr`]) and forwards every connection to `upstream`
    /// (`host:port`, resolved per connection, so a device that comes back
    /// elsewhere is found), applying `faults`.
    pub async fn start(
        listen: SocketAddr,
        upstream: impl Into<String>,
        faults: ProxyFaults,
    ) -> Result<ProxyHandle, SimError> {
        Self::start_with_shutdown(listen, upstream, faults, &CancellationToken::new()).await
    }

    /// [`Self::start`], also stopping when `shutdown` is cancelled.
    pub async fn start_with_shutdown(
        listen: SocketAddr,
        upstream: impl Into<String>,
        faults: ProxyFaults,
        shutdown: &CancellationToken,
    ) -> Result<ProxyHandle, SimError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
        let (tx, rx) = watch::channel(faults);
        let stats = Arc::new(Stats::default());
        let stop = shutdown.child_token();
        let proxy = Proxy {
            addr,
            upstream: upstream.into(),
            faults: rx,
            stats: stats.clone(),
            stop: stop.clone(),
        };
        tracing::info!(%addr, upstream = %proxy.upstream, ?faults, "fault proxy listening");
        let task = tokio::spawn(proxy.run(listener));
        Ok(ProxyHandle {
            addr,
            control: ProxyControl { tx, stats },
            stop,
            task,
        })
    }
}

impl ProxyHandle {
    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that changes the faults, e.g. from another task.
    pub fn control(&self) -> ProxyControl {
        self.control.clone()
    }

    /// Replaces the faults; open connections see it at once.
    pub fn set_faults(&self, faults: ProxyFaults) {
        self.control.set(faults);
    }

    /// Changes some of the faults.
    pub fn update_faults(&self, f: impl FnOnce(&mut ProxyFaults)) {
        self.control.update(f);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.control.clear();
    }

    /// The faults in force.
    pub fn faults(&self) -> ProxyFaults {
        self.control.faults()
    }

    pub fn counters(&self) -> ProxyCounters {
        self.control.counters()
    }

    /// Closes the port and every connection, and waits for that.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the proxy stopped (after the shutdown token given to
    /// [`FaultProxy::start_with_shutdown`]).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The accept loop's state.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    faults: watch::Receiver<ProxyFaults>,
    stats: Arc<Stats>,
    stop: CancellationToken,
}

impl Proxy {
    async fn run(mut self, listener: TcpListener) {
        let mut listener = Some(listener);
        let conns = tokio_util::task::TaskTracker::new();
        while !self.stop.is_cancelled() {
            let faults = *self.faults.borrow_and_update();
            if faults.gone == Some(GoneMode::Refuse) {
                // Closing the port is what makes connects fail fast, as
                // they do against a switched-off device.
                if listener.take().is_some() {
                    self.stats.refused_periods.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(addr = %self.addr, "fault: gone (port closed)");
                }
                tokio::select! {
                    _ = self.stop.cancelled() => break,
                    r = self.faults.changed() => if r.is_err() { break },
                }
                continue;
            }
            let l = match listener.take() {
                Some(l) => l,
                None => match self.rebind().await {
                    Some(l) => {
                        tracing::info!(addr = %self.addr, "fault cleared: listening again");
                        l
                    }
                    None => break,
                },
            };
            tokio::select! {
                _ = self.stop.cancelled() => break,
                r = self.faults.changed() => if r.is_err() { break },
                accepted = l.accept() => match accepted {
                    Ok((client, peer)) => {
                        let _ = client.set_nodelay(true);
                        let gone = self.faults.borrow().gone;
                        if gone == Some(GoneMode::Blackhole) {
                            conns.spawn(conn::blackhole(client, self.faults.clone(), self.stop.clone()));
                        } else {
                            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "proxying");
                            conns.spawn(conn::serve(
                                client,
                                self.upstream.clone(),
                                self.faults.clone(),
                                self.stats.clone(),
                                self.stop.clone(),
                            ));
                        }
                    }
                    Err(e) => {
                        // Out of descriptors and the like: do not spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
            listener = Some(l);
        }
        drop(listener);
        self.stop.cancel();
        conns.close();
        conns.wait().await;
    }

    /// Binds the same address again after a gone period, retrying while
    /// the old socket still holds the port. None when stopped meanwhile.
    async fn rebind(&self) -> Option<TcpListener> {
        let mut logged = false;
        loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => return Some(l),
                Err(e) => {
                    if !logged {
                        tracing::warn!(addr = %self.addr, error = %e, "cannot listen again yet; retrying");
                        logged = true;
                    }
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// The CLI's "gone for N s every M s": a device that keeps going away for
/// minutes and coming back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoneSchedule {
    /// Time from one disappearance to the next (the device is up for
    /// `every - down_for`).
    pub every: Duration,
    pub down_for: Duration,
    pub mode: GoneMode,
}

impl GoneSchedule {
    /// Runs until `stop`, switching `gone` on and off in `control`.
    pub async fn run(self, control: ProxyControl, stop: CancellationToken) {
        let up_for = self.every.saturating_sub(self.down_for);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(up_for) => {}
            }
            tracing::info!(
                down_for_s = self.down_for.as_secs_f64(),
                "fault: device gone"
            );
            control.update(|f| f.gone = Some(self.mode));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.down_for) => {}
            }
            tracing::info!("fault: device back");
            control.update(|f| f.gone = None);
        }
    }
}

/// Connects to `upstream` within [`UPSTREAM_CONNECT_TIMEOUT`].
async fn connect_upstream(upstream: &str) -> std::io::Result<TcpStream> {
    match tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "upstream did not accept in time",
        )),
    }
}

#[cfg(test)]
mod tests;
