//! The proxy against a tiny echo server on loopback: every fault strikes,
//! and clearing it gives a clean link again.
#![allow(clippy::unwrap_used)]

use super::*;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(10);

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn proxy(faults: ProxyFaults) -> ProxyHandle {
    let upstream = echo_server().await;
    FaultProxy::start("127.0.0.1:0".parse().unwrap(), upstream.to_string(), faults)
        .await
        .unwrap()
}

/// Sends `data` and reads the same number of bytes back.
async fn round_trip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    let mut back = vec![0u8; data.len()];
    let (mut r, mut w) = s.split();
    let write = async {
        w.write_all(data).await.unwrap();
    };
    let read = async {
        tokio::time::timeout(LIMIT, r.read_exact(&mut back))
            .await
            .expect("echo within the limit")
            .unwrap();
    };
    tokio::join!(write, read);
    back
}

/// Waits (bounded) for the peer to close the connection.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bytes_pass_through_unchanged_without_faults() {
    let p = proxy(ProxyFaults::none()).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    for _ in 0..3 {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        assert_eq!(round_trip(&mut s, &data).await, data);
        assert_eq!(round_trip(&mut s, b"x").await, b"x");
    }
    let c = p.counters();
    assert_eq!((c.accepted, c.cut, c.garbage), (3, 0, 0), "{c:?}");
    p.stop().await;
}

#[tokio::test]
async fn delay_holds_every_reply_back_and_clearing_it_restores_the_speed() {
    let delay = Duration::from_millis(300);
    let p = proxy(ProxyFaults {
        delay: Some(delay),
        ..ProxyFaults::none()
    })
    .await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"ping").await, b"ping");
        assert!(t.elapsed() >= delay, "{:?}", t.elapsed());
    }
    // Latency, not throughput: ten chunks in flight take about one delay.
    let t = Instant::now();
    let (mut r, mut w) = s.split();
    let write = async {
        for _ in 0..10 {
            w.write_all(b"0123456789").await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let mut back = vec![0u8; 100];
    let read = async { r.read_exact(&mut back).await.unwrap() };
    tokio::join!(write, read);
    assert!(t.elapsed() < delay * 5, "{:?}", t.elapsed());
    p.clear_faults();
    let t = Instant::now();
    assert_eq!(round_trip(&mut s, b"pong").await, b"pong");
    assert!(t.elapsed() < delay, "{:?}", t.elapsed());
    p.stop().await;
}

#[tokio::test]
async fn drop_cuts_each_connection_and_new_ones_work() {
    let p = proxy(ProxyFaults {
        drop_every: Some(Duration::from_millis(300)),
        ..ProxyFaults::none()
    })
    .await;
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"before").await, b"before");
    assert!(closed(&mut s).await, "the proxy did not cut the connection");
    assert_eq!(p.counters().cut, 1);
    // A new connection is served again (until its own deadline).
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"after").await, b"after");
    // Cleared: the connection stays.
    p.clear_faults();
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(round_trip(&mut s, b"kept").await, b"kept");
    p.stop().await;
}

#[tokio::test]
async fn garbage_appears_in_the_reply_stream() {
    let p = proxy(ProxyFaults {
        garbage_every: Some(Duration::from_millis(50)),
        ..ProxyFaults::none()
    })
    .await;
    // The echo server sends nothing unasked: whatever arrives is garbage.
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0);
    assert!(p.counters().garbage >= 1);
    p.clear_faults();
    // Drain what was injected before the clear, then the link is clean.
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"clean").await, b"clean");
    let before = p.counters().garbage;
    assert_eq!(round_trip(&mut s, b"still clean").await, b"still clean");
    assert_eq!(p.counters().garbage, before);
    p.stop().await;
}

#[tokio::test]
async fn gone_refuses_connections_then_the_device_comes_back_on_the_same_port() {
    let p = proxy(ProxyFaults::none()).await;
    let addr = p.addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut open, b"up").await, b"up");
    p.update_faults(|f| f.gone = Some(GoneMode::Refuse));
    assert!(closed(&mut open).await, "open connection not cut");
    wait_for("connections refused", async || {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert_eq!(p.counters().refused_periods, 1);
    p.clear_faults();
    let mut back = None;
    wait_for("listening again", async || {
        back = TcpStream::connect(addr).await.ok();
        back.is_some()
    })
    .await;
    let mut s = back.unwrap();
    assert_eq!(round_trip(&mut s, b"back").await, b"back");
    p.stop().await;
}

#[tokio::test]
async fn a_blackholed_device_goes_silent_and_resets_its_connections_when_it_returns() {
    let p = proxy(ProxyFaults::none()).await;
    let mut stalled = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut stalled, b"up").await, b"up");
    p.update_faults(|f| f.gone = Some(GoneMode::Blackhole));
    let mut hung = TcpStream::connect(p.addr()).await.unwrap();
    stalled.write_all(b"anyone?").await.unwrap();
    hung.write_all(b"hello?").await.unwrap();
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), hung.read(&mut buf))
            .await
            .is_err(),
        "a hung device answered"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stalled.read(&mut buf))
            .await
            .is_err(),
        "a stalled connection answered or closed"
    );
    assert_eq!(p.counters().accepted, 1);
    p.clear_faults();
    // The held connections are not resurrected: the device rebooted.
    assert!(closed(&mut hung).await);
    assert!(closed(&mut stalled).await);
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(round_trip(&mut s, b"back").await, b"back");
    p.stop().await;
}

#[tokio::test]
async fn an_upstream_that_is_down_closes_the_client() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let p = FaultProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        dead.to_string(),
        ProxyFaults::none(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    assert!(closed(&mut s).await);
    assert_eq!(p.counters().upstream_failures, 1);
    p.stop().await;
}

#[tokio::test]
async fn the_gone_schedule_takes_the_device_away_and_brings_it_back() {
    let p = proxy(ProxyFaults::none()).await;
    let stop = CancellationToken::new();
    tokio::spawn(
        GoneSchedule {
            every: Duration::from_millis(400),
            down_for: Duration::from_millis(200),
            mode: GoneMode::Refuse,
        }
        .run(p.control(), stop.clone()),
    );
    let control = p.control();
    wait_for("gone", async || control.faults().gone.is_some()).await;
    wait_for("back", async || control.faults().gone.is_none()).await;
    stop.cancel();
    assert!(p.counters().refused_periods >= 1);
    p.stop().await;
}

#[test]
fn cli_flags_become_faults_and_a_schedule() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        f: cli::ProxyFaultArgs,
    }
    let t = T::try_parse_from([
        "t",
        "--delay-ms",
        "250",
        "--drop-every-s",
        "30",
        "--gone-for-s",
        "120",
        "--gone-every-s",
        "600",
    ])
    .unwrap();
    let (f, s) = t.f.faults().unwrap();
    assert_eq!(f.delay, Some(Duration::from_millis(250)));
    assert_eq!(f.drop_every, Some(Duration::from_secs(30)));
    assert_eq!(f.garbage_every, None);
    let s = s.unwrap();
    assert_eq!(
        (s.every, s.down_for, s.mode),
        (
            Duration::from_secs(600),
            Duration::from_secs(120),
            GoneMode::Refuse
        )
    );
    assert!(T::try_parse_from(["t", "--gone-for-s", "5"]).is_err());
    let t = T::try_parse_from(["t", "--gone-for-s", "5", "--gone-every-s", "5"]).unwrap();
    assert!(t.f.faults().is_err());
    let t = T::try_parse_from(["t", "--drop-every-s", "0"]).unwrap();
    assert!(t.f.faults().is_err());
    assert!(!T::try_parse_from(["t"]).unwrap().f.any());
}
