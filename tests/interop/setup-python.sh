#!/usr/bin/env bash
# Creates or updates the Python venv of the interop tests (pymodbus for the
# Modbus interop tests, paho-mqtt for the MQTT ones, asyncua for the OPC UA
# ones: every pin is in requirements.txt beside this file) and prints the
# path of its python on stdout (make-venv.sh does the work).
# Venv: $DCMMS_INTEROP_VENV, default <repo>/target/interop-venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
exec "$here/make-venv.sh" "$here/requirements.txt" "${DCMMS_INTEROP_VENV:-$repo/target/interop-venv}"
