#!/usr/bin/env bash
# Creates or updates the training venv (numpy, scikit-learn, skl2onnx, onnx;
# pins in requirements.txt beside this file) and prints the path of its
# python on stdout; everything else goes to stderr. Idempotent and safe to
# run concurrently (takes a lock; installs only when requirements.txt
# changed since the last successful install).
# Venv: $DCMMS_MODELS_VENV, default edge/models/.venv (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
req="$here/requirements.txt"
venv="${DCMMS_MODELS_VENV:-$here/.venv}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if ! "$py" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || {
      echo "FATAL: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
      exit 1
    }
  fi
  "$py" -m pip install --disable-pip-version-check -q -r "$req" >&2 || {
    echo "FATAL: pip could not install $req into $venv" >&2
    exit 1
  }
  echo "$want" >"$stamp"
fi
echo "$py"
