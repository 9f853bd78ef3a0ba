#!/usr/bin/env bash
# Set everything up and run the whole test suite: every test under the TensorFlow
# backend, then the backend-sensitive ones (trainer, EfficientNet-Lite0 parity)
# again under JAX. Extra arguments go to both pytest runs (e.g. -k scan, -x; -n 0 runs
# in one process). Tests run in $TLCORE_TEST_WORKERS pytest-xdist processes (default 2);
# the browser tests share one of them, in order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
status=0
echo "== TensorFlow backend: all tests"
n=${TLCORE_TEST_WORKERS:-2}
workers=(-n "$n" --dist loadgroup)
# Each test process (and the search workers it starts) uses its share of the cores.
cores=$(nproc)
export TLCORE_CPU_THREADS=${TLCORE_CPU_THREADS:-$(( n > 0 && cores / n > 0 ? cores / n : 1 ))}
KERAS_BACKEND=tensorflow .venv/bin/python -m pytest "${workers[@]}" "$@" || status=$?
echo "== JAX backend: tests marked 'backend'"
# Status 5 is "no test selected": a -k that picks no backend-sensitive test is not a failure here.
KERAS_BACKEND=jax .venv/bin/python -m pytest -m backend "${workers[@]}" "$@" || {
  rc=$?; [ "$rc" -eq 5 ] || [ "$status" -ne 0 ] || status=$rc; }
exit $status
