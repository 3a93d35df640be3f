"""An opendnp3 outstation (the dnp3-python binding, pydnp3) for the edge's
DNP3 interop test (tests/tests/interop_dnp3.rs).

Usage: opendnp3_outstation.py PORT

Listens on 127.0.0.1:PORT as outstation 1024 for master 1 and prints
"ready" once listening. Points (all class 1 events by default):
  analog 0   raw 19000.0 + k, k counting up every 200 ms
  binary 0   True/False, flipping every second
  counter 1  100000 + k
Runs until killed (or until stdin closes).
"""

import sys
import threading
import time

from pydnp3 import asiodnp3, asiopal, opendnp3, openpal


class App(opendnp3.IOutstationApplication):
    def __init__(self):
        super(App, self).__init__()

    def SupportsWriteAbsoluteTime(self):
        return False


class ChannelListener(asiodnp3.IChannelListener):
    def __init__(self):
        super(ChannelListener, self).__init__()

    def OnStateChange(self, state):
        pass


def main():
    port = int(sys.argv[1])
    # pybind11 needs the Python objects alive as long as the stack uses them.
    listener = ChannelListener()
    app = App()
    manager = asiodnp3.DNP3Manager(1, asiodnp3.ConsoleLogger().Create())
    channel = manager.AddTCPServer(
        "server",
        opendnp3.levels.NORMAL,
        asiopal.ChannelRetry().Default(),
        "127.0.0.1",
        port,
        listener,
    )
    # No time-and-interval points (g50v4): opendnp3 puts them in class 0
    # with a qualifier the dnp3 crate's master rejects as malformed, so the
    # integrity poll would never succeed (docs/specs/drivers.md, DNP3,
    # known limits). Binary, analog and counter points only.
    sizes = opendnp3.DatabaseSizes(4, 0, 4, 4, 0, 0, 0, 0)
    cfg = asiodnp3.OutstationStackConfig(sizes)
    cfg.outstation.eventBufferConfig = opendnp3.EventBufferConfig().AllTypes(100)
    cfg.outstation.params.allowUnsolicited = True
    cfg.link.LocalAddr = 1024
    cfg.link.RemoteAddr = 1
    cfg.link.KeepAliveTimeout = openpal.TimeDuration().Max()
    handler = opendnp3.SuccessCommandHandler().Create()
    outstation = channel.AddOutstation("outstation", handler, app, cfg)
    outstation.Enable()

    def apply(k):
        b = asiodnp3.UpdateBuilder()
        b.Update(opendnp3.Analog(19000.0 + k), 0)
        b.Update(opendnp3.Binary((k // 5) % 2 == 0), 0)
        b.Update(opendnp3.Counter(100000 + k), 1)
        outstation.Apply(b.Build())

    apply(0)
    print("ready", flush=True)

    stop = threading.Event()

    def watch_stdin():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    k = 0
    while not stop.is_set():
        time.sleep(0.2)
        k += 1
        apply(k)
    manager.Shutdown()


if __name__ == "__main__":
    main()
