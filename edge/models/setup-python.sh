#!/usr/bin/env bash
# Creates or updates the training venv (numpy, scikit-learn, skl2onnx, onnx;
# pins in requirements.txt beside this file) and prints the path of its
# python on stdout (tests/interop/make-venv.sh does the work: idempotent,
# locked, installs only when requirements.txt changed).
# Venv: $DCMMS_MODELS_VENV, default edge/models/.venv (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec "$here/../../tests/interop/make-venv.sh" "$here/requirements.txt" "${DCMMS_MODELS_VENV:-$here/.venv}"
