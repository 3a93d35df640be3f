//! The simulator's fault injection and shutdown, seen from a raw client.
#![allow(clippy::unwrap_used)]

use dcmms_simulators::modbus::{Fault, FaultPlan, FleetConfig, SimClock, start_fleet};
use dcmms_simulators::sunspec::{BASE_ADDRESS, SUNS_MARKER};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_modbus::client::{Reader, tcp::connect_slave};
use tokio_modbus::prelude::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(10);

fn cfg(count: usize) -> FleetConfig {
    FleetConfig {
        count,
        clock: SimClock::frozen(1_782_023_400_000),
        ..FleetConfig::default()
    }
}

/// A raw MBAP read of the SunS marker: tid 7, unit 1, FC 3, 2 registers.
const READ_MARKER: [u8; 12] = [0, 7, 0, 0, 0, 6, 1, 3, 0x9C, 0x40, 0, 2];

/// Reads until EOF or error; true if the peer closed the connection.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(LIMIT, s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn shutdown_closes_open_connections_not_only_the_listener() {
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(cfg(1), shutdown.clone()).await.unwrap();
    let mut s = TcpStream::connect(fleet.addrs()[0]).await.unwrap();
    s.write_all(&READ_MARKER).await.unwrap();
    let mut reply = [0u8; 13];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[9..], &[0x53, 0x75, 0x6E, 0x53]);
    shutdown.cancel();
    fleet.wait().await;
    assert!(
        closed_by_peer(&mut s).await,
        "connection still open after shutdown"
    );
}

#[tokio::test]
async fn exception_slow_and_garbage_faults_apply_per_request_and_clear() {
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(cfg(2), shutdown.clone()).await.unwrap();
    let addr = fleet.addrs()[0];
    let mut ctx = connect_slave(addr, Slave(1)).await.unwrap();

    fleet
        .set_fault(
            Some(0),
            FaultPlan::always(Fault::Exception(ExceptionCode::ServerDeviceFailure)),
        )
        .unwrap();
    let r = ctx.read_holding_registers(BASE_ADDRESS, 2).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::ServerDeviceFailure));
    // Device 1 is unaffected.
    let mut other = connect_slave(fleet.addrs()[1], Slave(1)).await.unwrap();
    let ok = other.read_holding_registers(BASE_ADDRESS, 2).await.unwrap();
    assert_eq!(ok, Ok(SUNS_MARKER.to_vec()));

    // Slow: a reply still comes, only later than a short timeout allows.
    fleet
        .set_fault(
            Some(0),
            FaultPlan::always(Fault::Slow(Duration::from_secs(3))),
        )
        .unwrap();
    let late = tokio::time::timeout(
        Duration::from_millis(300),
        ctx.read_holding_registers(BASE_ADDRESS, 2),
    )
    .await;
    assert!(late.is_err(), "slow reply came within 300 ms");

    // Garbage: bytes of a reply's length that are not a valid MBAP reply.
    fleet
        .set_fault(Some(0), FaultPlan::always(Fault::Garbage))
        .unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&READ_MARKER).await.unwrap();
    let mut junk = [0u8; 13];
    tokio::time::timeout(LIMIT, s.read_exact(&mut junk))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(&junk[2..4], &[0, 0], "protocol id must not be Modbus");

    fleet.set_fault(None, FaultPlan::default()).unwrap();
    let mut ctx = connect_slave(addr, Slave(1)).await.unwrap();
    let ok = ctx.read_holding_registers(BASE_ADDRESS, 2).await.unwrap();
    assert_eq!(ok, Ok(SUNS_MARKER.to_vec()));
    assert!(fleet.set_fault(Some(9), FaultPlan::default()).is_err());
    shutdown.cancel();
    fleet.wait().await;
}

#[tokio::test]
async fn drop_closes_the_connection_on_a_request() {
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(cfg(1), shutdown.clone()).await.unwrap();
    fleet
        .set_fault(None, FaultPlan::always(Fault::Drop))
        .unwrap();
    let mut s = TcpStream::connect(fleet.addrs()[0]).await.unwrap();
    s.write_all(&READ_MARKER).await.unwrap();
    assert!(closed_by_peer(&mut s).await);
    shutdown.cancel();
    fleet.wait().await;
}

#[tokio::test]
async fn a_gone_device_refuses_and_closes_then_returns_on_the_same_port() {
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(cfg(1), shutdown.clone()).await.unwrap();
    let addr = fleet.addrs()[0];
    let mut open = TcpStream::connect(addr).await.unwrap();
    fleet
        .go_away_for(Some(0), Duration::from_millis(800))
        .unwrap();
    assert_eq!(fleet.fault(0).unwrap().fault, Fault::Gone);
    assert!(
        closed_by_peer(&mut open).await,
        "open connection survived 'gone'"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "gone device accepted"
    );
    // Back by itself after the duration, same port.
    let start = Instant::now();
    let mut ctx = loop {
        if let Ok(c) = connect_slave(addr, Slave(1)).await {
            break c;
        }
        assert!(start.elapsed() < LIMIT, "device did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ok = ctx.read_holding_registers(BASE_ADDRESS, 2).await.unwrap();
    assert_eq!(ok, Ok(SUNS_MARKER.to_vec()));
    assert_eq!(fleet.fault(0).unwrap(), FaultPlan::default());
    shutdown.cancel();
    fleet.wait().await;
}
