#!/usr/bin/env bash
# Set everything up and run the whole test suite: every test under the TensorFlow
# backend, then the backend-sensitive ones (trainer, EfficientNet-Lite0 parity)
# again under JAX. Extra arguments go to both pytest runs (e.g. -k scan, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
status=0
echo "== TensorFlow backend: all tests"
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest "$@" || status=$?
echo "== JAX backend: tests marked 'backend'"
KERAS_BACKEND=jax .venv/bin/python -m pytest -m backend "$@" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit $status
