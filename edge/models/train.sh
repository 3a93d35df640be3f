#!/usr/bin/env bash
# Rebuilds the committed anomaly models from the simulators' data:
# builds dcmms-sim, creates the venv (setup-python.sh), runs train.py.
# Deterministic: fixed simulator seeds, fixed network seed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build -q -p dcmms-simulators --bin dcmms-sim)
py="$("$here/setup-python.sh")"
cd "$here"
exec "$py" train.py --sim "$target/debug/dcmms-sim" "$@"
