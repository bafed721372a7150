#!/usr/bin/env bash
# Open JupyterLab on the tour notebook from the project's .venv (run scripts/setup.sh first; `make lab` does both).
# As root (containers, cloud notebooks) JupyterLab refuses to start without --allow-root, so it is added then.
# Extra arguments go to `jupyter lab` (e.g. --no-browser --port=8899); the tests start the server through this script.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "lab: no .venv here; run scripts/setup.sh (or make lab) first" >&2; exit 1; }
args=()
[ "$(id -u)" = "0" ] && args+=(--allow-root)
exec .venv/bin/python -m jupyter lab "${args[@]}" "$@" notebooks/00-tour.ipynb
