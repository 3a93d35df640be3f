#!/usr/bin/env python3
"""Independent MQTT publisher for the edge's MQTT driver tests (paho-mqtt).

Reads a JSON list of messages on stdin, publishes them in order at the given
QoS (default 1), waits for each to be acknowledged, and disconnects cleanly.
Each message is {"topic": str, "payload": str} or {"topic": str,
"payload_hex": str} for bytes that are not text, plus optional "qos".

Prints {"published": N} on stdout; exits 2 with a message on stderr when the
broker is unreachable or a publish is not acknowledged.

usage: paho_weather_publisher.py --host HOST --port PORT --client-id ID < messages.json
"""
import argparse
import json
import sys

try:
    import paho.mqtt.client as mqtt
except ImportError as e:  # a missing package is a test failure, not a skip
    sys.exit(f"paho-mqtt is not installed ({e}); run tests/interop/setup-python.sh")


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()
    messages = json.load(sys.stdin)

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=args.client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as e:
        fail(f"cannot connect to the MQTT broker at {args.host}:{args.port}: {e}")
    client.loop_start()
    try:
        for i, m in enumerate(messages):
            if "payload_hex" in m:
                payload = bytes.fromhex(m["payload_hex"])
            else:
                payload = m["payload"].encode("utf-8")
            info = client.publish(m["topic"], payload, qos=int(m.get("qos", 1)))
            info.wait_for_publish(timeout=args.timeout)
            if not info.is_published():
                fail(f"message {i} to {m['topic']} was not acknowledged (rc={info.rc})")
    finally:
        client.disconnect()
        client.loop_stop()
    print(json.dumps({"published": len(messages)}))


if __name__ == "__main__":
    main()
