#!/usr/bin/env bash
# make-venv.sh REQUIREMENTS VENV [FAIL_CODE]
# Creates or updates the Python venv VENV with the pins of REQUIREMENTS and
# prints the path of its python on stdout; everything else goes to stderr.
# Needs python3 with venv + pip, and PyPI whenever REQUIREMENTS changed.
# Idempotent and safe to run concurrently (several tests call it at once):
# it takes a lock and installs only when REQUIREMENTS differs from what the
# last successful install recorded. Exits FAIL_CODE (default 1) when the
# venv cannot be made. The one mechanism behind every setup-python*.sh.
set -euo pipefail
req="$1"
venv="$2"
fail="${3:-1}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit "$fail"; }
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  if ! "$py" -c 'import sys' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 || {
      echo "python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
      exit "$fail"
    }
  fi
  "$py" -m pip install --disable-pip-version-check -q -r "$req" >&2 || {
    echo "pip could not install $req into $venv" >&2
    exit "$fail"
  }
  echo "$want" >"$stamp"
fi
echo "$py"
