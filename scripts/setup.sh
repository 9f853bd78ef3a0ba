#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv.
#   scripts/setup.sh        runtime dependencies (requirements.txt)
#   scripts/setup.sh dev    plus the test tools, the linter and the build backend (requirements-dev.txt)
# Re-running is cheap: pip runs only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
want=requirements.txt
reqs=(-r requirements.txt)
if [ "${1:-}" = "dev" ]; then
  want=requirements-dev.txt
  reqs+=(-r requirements-dev.txt)
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
  echo "       Install it (Debian/Ubuntu: sudo apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv ..."
  if ! "$PYTHON" -m venv .venv; then
    echo "error: could not create a virtual environment. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi
stamp=.venv/.tlcore-$(basename "$want" .txt).sha
sum=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
  echo "Installing $want into .venv (first time: a few minutes) ..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "${reqs[@]}"
  echo "$sum" > "$stamp"
fi
