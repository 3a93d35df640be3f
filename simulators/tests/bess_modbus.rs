//! A BESS rack served over Modbus TCP (`dcmms-sim modbus --device bess`):
//! the BMS register map read with tokio-modbus, the rack faults' effect
//! on it, and the fleet's link faults on a rack.
#![allow(clippy::unwrap_used)]

use dcmms_simulators::bess::RackModel;
use dcmms_simulators::bess::bms::{BMS_BASE, BMS_LEN};
use dcmms_simulators::bess::faults::{BessFault, BessFaultKind};
use dcmms_simulators::modbus::{DeviceKind, Fault, FaultPlan, FleetConfig, SimClock, start_fleet};
use tokio_modbus::client::{Reader, tcp::connect_slave};
use tokio_modbus::prelude::{ExceptionCode, Slave};
use tokio_util::sync::CancellationToken;

const SEED: u64 = 21;

/// Half an hour into the evening discharge of 2026-06-21 (local day).
fn discharging() -> (i64, i64) {
    let rack = RackModel::new(SEED);
    let day = RackModel::day_start(1_782_000_000_000 + 12 * 3_600_000);
    let s = rack.schedule(day);
    (day, day + s.discharge_from_ms + 30 * 60_000)
}

#[tokio::test]
async fn the_bms_map_shows_the_rack_and_its_faults() {
    let (day, t) = discharging();
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 1,
            seed: SEED,
            clock: SimClock::frozen(t),
            device: DeviceKind::BessRack,
            ..FleetConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    assert!(fleet.is_bess());
    let mut ctx = connect_slave(fleet.addrs()[0], Slave(1)).await.unwrap();
    let healthy = ctx
        .read_holding_registers(BMS_BASE, BMS_LEN)
        .await
        .unwrap()
        .unwrap();
    // The registers are the rack model's reading, scaled.
    let r = RackModel::new(SEED).observe(t);
    assert_eq!(healthy[1] as i16, (r.rack_current * 10.0).round() as i16);
    assert!(healthy[1] as i16 > 200, "{healthy:?}");
    assert_eq!(healthy[9], 2, "discharging");
    assert_eq!(healthy[3], (r.cell_v_max * 1000.0).round() as u16);
    assert_eq!(healthy[5] as i16, (r.cell_t_max * 10.0).round() as i16);
    // Input registers: the same map.
    let input = ctx
        .read_input_registers(BMS_BASE, BMS_LEN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(input, healthy);

    // Cooling failed since the morning: hotter for the same current.
    let since = |kind| BessFault {
        kind,
        start_ms: day + 6 * 3_600_000,
        end_ms: None,
    };
    fleet
        .set_bess_faults(None, &[since(BessFaultKind::HotRack)])
        .unwrap();
    let hot = ctx
        .read_holding_registers(BMS_BASE, BMS_LEN)
        .await
        .unwrap()
        .unwrap();
    let t_max = |regs: &[u16]| f64::from(regs[5] as i16) / 10.0;
    let air = |regs: &[u16]| f64::from(regs[7] as i16) / 10.0;
    assert!(
        t_max(&hot) - air(&hot) > 1.5 * (t_max(&healthy) - air(&healthy)),
        "{hot:?} vs {healthy:?}"
    );
    // A weak cell instead: the spread opens under current.
    fleet
        .set_bess_faults(None, &[since(BessFaultKind::CellImbalance)])
        .unwrap();
    let weak = ctx
        .read_holding_registers(BMS_BASE, BMS_LEN)
        .await
        .unwrap()
        .unwrap();
    let spread = |regs: &[u16]| i32::from(regs[3]) - i32::from(regs[4]);
    assert!(
        spread(&weak) > spread(&healthy) + 10,
        "{weak:?} vs {healthy:?}"
    );
    assert_eq!(weak[5], healthy[5], "no thermal effect");
    // Cleared: healthy again. Inverter faults do not apply to a rack.
    fleet.set_bess_faults(None, &[]).unwrap();
    let again = ctx
        .read_holding_registers(BMS_BASE, BMS_LEN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, healthy);
    assert!(fleet.set_inverter_faults(None, &[]).is_err());

    // Past the map: IllegalDataAddress. The fleet's link faults apply.
    let past = ctx
        .read_holding_registers(BMS_BASE, BMS_LEN + 1)
        .await
        .unwrap();
    assert_eq!(past, Err(ExceptionCode::IllegalDataAddress));
    fleet
        .set_fault(
            Some(0),
            FaultPlan::always(Fault::Exception(ExceptionCode::ServerDeviceFailure)),
        )
        .unwrap();
    let failed = ctx.read_holding_registers(BMS_BASE, 2).await.unwrap();
    assert_eq!(failed, Err(ExceptionCode::ServerDeviceFailure));
    shutdown.cancel();
    fleet.wait().await;
}
