//! One proxied connection: client→server bytes pass untouched, the
//! server→client direction carries the injected delay and garbage, and a
//! watcher cuts both sides on a drop deadline or when the device goes away.

use super::{GoneMode, ProxyFaults, Stats, connect_upstream};
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Server→client chunks in flight while delayed; beyond that the upstream
/// is not read (TCP backpressure instead of unbounded memory).
const DELAYED_CHUNKS: usize = 64;
const CHUNK: usize = 16 * 1024;

/// Why the proxy ended a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Drop,
    Gone,
    /// Gone as a hung device: the connection stays open and goes silent.
    Stall,
    Stop,
}

pub(super) async fn serve(
    mut client: TcpStream,
    upstream: String,
    mut faults: watch::Receiver<ProxyFaults>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    if faults.borrow().gone.is_some() {
        abort(&client);
        return;
    }
    let up = tokio::select! {
        _ = stop.cancelled() => return,
        r = connect_upstream(&upstream) => r,
    };
    let mut up = match up {
        Ok(s) => s,
        Err(e) => {
            stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%upstream, error = %e, "upstream refused; closing the client");
            abort(&client);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let cut = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, uw) = up.split();
        let mut uw = uw;
        tokio::select! {
            _ = tokio::io::copy(&mut cr, &mut uw) => None,
            _ = server_to_client(&mut ur, &mut cw, faults.clone(), &stats) => None,
            why = cut_signal(&mut faults, &stop) => Some(why),
        }
    };
    match cut {
        Some(why @ (Cut::Drop | Cut::Gone)) => {
            stats.cut.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?why, "fault: connection cut");
            abort(&client);
            abort(&up);
        }
        Some(Cut::Stall) => {
            // Power lost without a word: the client only notices by its
            // own timeouts. When the device is back it knows nothing of
            // this connection, hence the RST then.
            tracing::debug!("fault: connection stalled");
            hold_silent(&mut client, &mut faults, &stop).await;
            stats.cut.fetch_add(1, Ordering::Relaxed);
            abort(&client);
            abort(&up);
        }
        Some(Cut::Stop) => {}
        // One side closed: the other sees an orderly close.
        None => {}
    }
}

/// Makes the close abrupt (RST, not FIN), as a power cut or a crashed
/// controller looks to the peer.
fn abort(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// Resolves when the proxy must cut the connection.
async fn cut_signal(faults: &mut watch::Receiver<ProxyFaults>, stop: &CancellationToken) -> Cut {
    let gone = |f: &ProxyFaults| match f.gone {
        Some(GoneMode::Refuse) => Some(Cut::Gone),
        Some(GoneMode::Blackhole) => Some(Cut::Stall),
        None => None,
    };
    let first = *faults.borrow_and_update();
    if let Some(cut) = gone(&first) {
        return cut;
    }
    let mut drop_every = first.drop_every;
    let mut drop_at = drop_every.map(|d| Instant::now() + d);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Cut::Stop,
            r = faults.changed() => {
                if r.is_err() {
                    return Cut::Stop;
                }
                let f = *faults.borrow_and_update();
                if let Some(cut) = gone(&f) {
                    return cut;
                }
                if f.drop_every != drop_every {
                    drop_every = f.drop_every;
                    drop_at = drop_every.map(|d| Instant::now() + d);
                }
            }
            _ = sleep_until(drop_at) => return Cut::Drop,
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Delay applies per chunk from the time it was read, so a slow link adds
/// latency without also throttling throughput.
async fn server_to_client(
    ur: &mut ReadHalf<'_>,
    cw: &mut WriteHalf<'_>,
    faults: watch::Receiver<ProxyFaults>,
    stats: &Stats,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAYED_CHUNKS);
    let read_faults = faults.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match ur.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let delay = read_faults.borrow().delay.unwrap_or(Duration::ZERO);
            let chunk = buf.get(..n).unwrap_or_default().to_vec();
            if tx.send((Instant::now() + delay, chunk)).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut faults = Some(faults);
        let mut every = faults
            .as_mut()
            .and_then(|f| f.borrow_and_update().garbage_every);
        let mut next_garbage = every.map(|d| Instant::now() + d);
        loop {
            let changed = async {
                match faults.as_mut() {
                    Some(f) => f.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = rx.recv() => {
                    let Some((due, data)) = item else { return };
                    tokio::time::sleep_until(due).await;
                    if cw.write_all(&data).await.is_err() {
                        return;
                    }
                }
                _ = sleep_until(next_garbage) => {
                    stats.garbage.fetch_add(1, Ordering::Relaxed);
                    if cw.write_all(&garbage()).await.is_err() {
                        return;
                    }
                    next_garbage = every.map(|d| Instant::now() + d);
                }
                ok = changed => {
                    let now_every = match (ok, faults.as_mut()) {
                        (true, Some(f)) => f.borrow_and_update().garbage_every,
                        _ => {
                            // The proxy is going away; stop watching.
                            faults = None;
                            every
                        }
                    };
                    if now_every != every {
                        every = now_every;
                        next_garbage = every.map(|d| Instant::now() + d);
                    }
                }
            }
        }
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        // Upstream closed: deliver what is still delayed, then close.
        _ = &mut reader => writer.await,
        _ = &mut writer => {}
    }
}

fn garbage() -> Vec<u8> {
    let mut rng = rand::thread_rng();
    let n = rng.gen_range(1..=64);
    (0..n).map(|_| rng.r#gen::<u8>()).collect()
}

/// A gone device in [`GoneMode::Blackhole`]: the connection is taken and
/// whatever the client sends is swallowed; nothing ever comes back. Cut
/// when the device returns, since a rebooted device knows nothing of it.
pub(super) async fn blackhole(
    mut client: TcpStream,
    mut faults: watch::Receiver<ProxyFaults>,
    stop: CancellationToken,
) {
    if hold_silent(&mut client, &mut faults, &stop).await {
        abort(&client);
    }
}

/// Swallows what the client sends until the device is no longer a
/// blackhole. False when the client closed first.
async fn hold_silent(
    client: &mut TcpStream,
    faults: &mut watch::Receiver<ProxyFaults>,
    stop: &CancellationToken,
) -> bool {
    let mut sink = vec![0u8; CHUNK];
    loop {
        if faults.borrow_and_update().gone != Some(GoneMode::Blackhole) {
            return true;
        }
        tokio::select! {
            _ = stop.cancelled() => return true,
            r = faults.changed() => {
                if r.is_err() {
                    return true;
                }
            }
            n = client.read(&mut sink) => {
                if matches!(n, Ok(0) | Err(_)) {
                    return false;
                }
            }
        }
    }
}
