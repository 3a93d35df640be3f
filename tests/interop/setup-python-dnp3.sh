#!/usr/bin/env bash
# Creates or updates the venv with the opendnp3 Python binding
# (requirements-dnp3.txt) for the DNP3 interop test and prints the path of
# its python on stdout; everything else goes to stderr. Kept apart from
# setup-python.sh because the only installable release is yanked upstream:
# when it cannot be installed this script exits 3 and the test skips,
# while the other interop suites are unaffected.
# Idempotent and safe to run concurrently (takes a lock).
# Venv: $DCMMS_INTEROP_DNP3_VENV, default <repo>/target/interop-venv-dnp3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
req="$here/requirements-dnp3.txt"
venv="${DCMMS_INTEROP_DNP3_VENV:-$repo/target/interop-venv-dnp3}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 3; }
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if ! "$py" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || {
      echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
      exit 3
    }
  fi
  "$py" -m pip install --disable-pip-version-check -q -r "$req" >&2 || {
    echo "pip could not install $req into $venv" >&2
    exit 3
  }
  "$py" -c 'from pydnp3 import opendnp3, asiodnp3, asiopal, openpal' >&2 || {
    echo "pydnp3 installed but does not import" >&2
    exit 3
  }
  echo "$want" >"$stamp"
fi
echo "$py"
