#!/usr/bin/env bash
# Set everything up and run the whole test suite.
# Extra arguments go to pytest (e.g. -k scan, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export NO_ALBUMENTATIONS_UPDATE=1 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
