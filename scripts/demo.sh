#!/usr/bin/env bash
# Set everything up and open the dashboard on the built-in demo dataset.
# Extra arguments go to `streamlit run` (e.g. --server.port 8600).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export TLCORE_HOME=${TLCORE_HOME:-$PWD/workspace}
echo "Workspace: $TLCORE_HOME"
exec .venv/bin/python -m streamlit run streamlit_app.py "$@"
