"""A SunSpec inverter served by pymodbus, for the dCMMS interop test.

Written from the SunSpec Information Model (models 1 and 103), not from the
dCMMS simulator. Usage: pymodbus_sunspec_server.py PORT
Prints "READY <port>" once listening.

Known values (raw, scale factor -> engineering value), checked by
tests/tests/interop_pymodbus.rs:
  A      1234, A_SF  -2  -> 12.34 A
  PhVphA 2301, V_SF  -1  -> 230.1 V
  W      4500, W_SF   1  -> 45000 W
  Hz     5002, Hz_SF -2  -> 50.02 Hz
  PF     -950, PF_SF -1  -> -95.0 Pct
  WH 123456789 (acc32), WH_SF 0 -> 123456789 Wh
  DCV    6000, DCV_SF -1 -> 600.0 V
  TmpCab  -55, Tmp_SF -1 -> -5.5 C
  St        4 (MPPT)
Everything else of model 103 is "not implemented".
"""

import asyncio
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartAsyncTcpServer

BASE = 40000
NI_U16 = 0xFFFF
NI_I16 = 0x8000


def s16(v):
    return v & 0xFFFF


def text(s, regs):
    b = s.encode("ascii").ljust(regs * 2, b"\0")
    return [(b[i] << 8) | b[i + 1] for i in range(0, regs * 2, 2)]


def sunspec_map():
    regs = [0x5375, 0x6E53]  # "SunS"
    # Model 1, common: Mn(16) Md(16) Opt(8) Vr(8) SN(16) DA Pad
    body1 = (
        text("pymodbus-interop", 16)
        + text("SunSpec-103", 16)
        + text("", 8)
        + text("3.6.9", 8)
        + text("SN-0001", 16)
        + [1, NI_I16]
    )
    assert len(body1) == 66
    regs += [1, len(body1)] + body1
    # Model 103, three-phase inverter (integer + scale factors).
    m = {}
    m["A"], m["AphA"], m["AphB"], m["AphC"], m["A_SF"] = 1234, NI_U16, NI_U16, NI_U16, s16(-2)
    for p in ["PPVphAB", "PPVphBC", "PPVphCA", "PhVphB", "PhVphC"]:
        m[p] = NI_U16
    m["PhVphA"], m["V_SF"] = 2301, s16(-1)
    m["W"], m["W_SF"] = 4500, 1
    m["Hz"], m["Hz_SF"] = 5002, s16(-2)
    m["VA"], m["VA_SF"] = NI_I16, NI_I16
    m["VAr"], m["VAr_SF"] = NI_I16, NI_I16
    m["PF"], m["PF_SF"] = s16(-950), s16(-1)
    m["WH"], m["WH_SF"] = 123456789, 0
    m["DCA"], m["DCA_SF"] = NI_U16, NI_I16
    m["DCV"], m["DCV_SF"] = 6000, s16(-1)
    m["DCW"], m["DCW_SF"] = NI_I16, NI_I16
    m["TmpCab"], m["TmpSnk"], m["TmpTrns"], m["TmpOt"], m["Tmp_SF"] = (
        s16(-55), NI_I16, NI_I16, NI_I16, s16(-1))
    m["St"], m["StVnd"] = 4, NI_U16
    order = [
        ("A", 1), ("AphA", 1), ("AphB", 1), ("AphC", 1), ("A_SF", 1),
        ("PPVphAB", 1), ("PPVphBC", 1), ("PPVphCA", 1),
        ("PhVphA", 1), ("PhVphB", 1), ("PhVphC", 1), ("V_SF", 1),
        ("W", 1), ("W_SF", 1), ("Hz", 1), ("Hz_SF", 1), ("VA", 1), ("VA_SF", 1),
        ("VAr", 1), ("VAr_SF", 1), ("PF", 1), ("PF_SF", 1), ("WH", 2), ("WH_SF", 1),
        ("DCA", 1), ("DCA_SF", 1), ("DCV", 1), ("DCV_SF", 1), ("DCW", 1), ("DCW_SF", 1),
        ("TmpCab", 1), ("TmpSnk", 1), ("TmpTrns", 1), ("TmpOt", 1), ("Tmp_SF", 1),
        ("St", 1), ("StVnd", 1),
    ]
    body103 = []
    for name, size in order:
        v = m[name]
        body103 += [(v >> 16) & 0xFFFF, v & 0xFFFF] if size == 2 else [v]
    body103 += [0xFFFF] * 12  # Evt1, Evt2, EvtVnd1-4: bitfield32 not implemented
    assert len(body103) == 50
    regs += [103, len(body103)] + body103
    regs += [0xFFFF, 0]  # end model
    return regs


async def main():
    port = int(sys.argv[1])
    block = ModbusSequentialDataBlock(BASE, sunspec_map())
    slave = ModbusSlaveContext(hr=block, ir=block, zero_mode=True)
    context = ModbusServerContext(slaves=slave, single=True)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: print(f"READY {port}", flush=True))
    await StartAsyncTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    asyncio.run(main())
