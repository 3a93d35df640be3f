#!/usr/bin/env bash
# Creates or updates the venv with the opendnp3 Python binding
# (requirements-dnp3.txt) for the DNP3 interop test and prints the path of
# its python on stdout (make-venv.sh does the work). Kept apart from
# setup-python.sh because the only installable release is yanked upstream:
# when it cannot be installed, or does not import, this script exits 3 and
# the test skips (fails under CI), while the other interop suites are
# unaffected.
# Venv: $DCMMS_INTEROP_DNP3_VENV, default <repo>/target/interop-venv-dnp3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="$("$here/make-venv.sh" "$here/requirements-dnp3.txt" "${DCMMS_INTEROP_DNP3_VENV:-$repo/target/interop-venv-dnp3}" 3)"
"$py" -c 'from pydnp3 import opendnp3, asiodnp3, asiopal, openpal' >&2 || {
  echo "pydnp3 installed but does not import" >&2
  exit 3
}
echo "$py"
