"""A wind turbine served by asyncua (FreeOpcUa, Python), for the dCMMS
OPC UA interop test. Independent of the dCMMS simulator and of async-opcua.

Usage: asyncua_turbine_server.py PORT GENERATION
Prints "READY <port> <namespace index>" once listening; serves until killed.

Address space (namespace urn:dcmms:interop:turbine, string node ids):

  Objects/
    Turbine1/                         ns=N;s=Turbine1 (object)
      WindSpeed          Double   7.5 + G           Good
      ActivePower        Double   1234.5 + G        Good
      RotorSpeed         Float    11.25 + G         Good
      Status             Int32    1 + G             Good
      NacelleTemperature Double   35.0 + G          UncertainLastUsableValue
      YawAngle           Double   180.0 + G         BadSensorFailure
      SerialNumber       String   "WTG-0001"        (not a number: no point)
      Gearbox/                        ns=N;s=Turbine1.Gearbox (object)
        OilTemperature   Double   61.0 + G          Good

G is GENERATION (the test restarts the server with G + 1 and expects the
new values). Every value's source timestamp is 2026-06-21T06:30:00Z + G s.
"""

import asyncio
import datetime
import sys

from asyncua import Server, ua

T0 = datetime.datetime(2026, 6, 21, 6, 30, 0, tzinfo=datetime.timezone.utc)


async def main(port: int, generation: int) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    server.set_server_name("dCMMS interop turbine (asyncua)")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:dcmms:interop:turbine")

    g = float(generation)
    ts = T0 + datetime.timedelta(seconds=generation)
    turbine = await server.nodes.objects.add_object(
        ua.NodeId("Turbine1", idx), ua.QualifiedName("Turbine1", idx)
    )
    gearbox = await turbine.add_object(
        ua.NodeId("Turbine1.Gearbox", idx), ua.QualifiedName("Gearbox", idx)
    )
    good = ua.StatusCode(ua.StatusCodes.Good)
    variables = [
        (turbine, "WindSpeed", 7.5 + g, ua.VariantType.Double, good),
        (turbine, "ActivePower", 1234.5 + g, ua.VariantType.Double, good),
        (turbine, "RotorSpeed", 11.25 + g, ua.VariantType.Float, good),
        (turbine, "Status", 1 + generation, ua.VariantType.Int32, good),
        (
            turbine,
            "NacelleTemperature",
            35.0 + g,
            ua.VariantType.Double,
            ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
        ),
        (
            turbine,
            "YawAngle",
            180.0 + g,
            ua.VariantType.Double,
            ua.StatusCode(ua.StatusCodes.BadSensorFailure),
        ),
        (turbine, "SerialNumber", "WTG-0001", ua.VariantType.String, good),
        (gearbox, "OilTemperature", 61.0 + g, ua.VariantType.Double, good),
    ]
    nodes = []
    for parent, name, value, vtype, status in variables:
        node_name = (
            f"Turbine1.Gearbox.{name}" if parent is gearbox else f"Turbine1.{name}"
        )
        node = await parent.add_variable(
            ua.NodeId(node_name, idx),
            ua.QualifiedName(name, idx),
            ua.Variant(value, vtype),
        )
        nodes.append((node, value, vtype, status))

    async with server:
        for node, value, vtype, status in nodes:
            await node.write_value(
                ua.DataValue(
                    Value=ua.Variant(value, vtype),
                    StatusCode_=status,
                    SourceTimestamp=ts,
                    ServerTimestamp=ts,
                )
            )
        print(f"READY {port} {idx}", flush=True)
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
