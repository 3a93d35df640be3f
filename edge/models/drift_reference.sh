#!/usr/bin/env bash
# Adds the drift reference (training feature deciles) to a model's metadata:
# builds the exporter, creates the venv, runs drift_reference.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build -q -p dcmms-simulators --bin dcmms-sim)
py="$("$here/setup-python.sh")"
cd "$here"
exec "$py" drift_reference.py --sim "$target/debug/dcmms-sim" "$@"
