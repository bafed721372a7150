#!/usr/bin/env bash
# Create .venv with everything superwidgets needs (idempotent). Used by `make lab` and `make test`.
#   WITH_BROWSER=1  also install Debian's Chromium for the browser tests (fails if it cannot).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3 python; do
    if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "setup: no python3 found; install Python 3.10+" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "setup: npm not found; install Node.js 18+ (apt-get install nodejs npm)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0" 2>&1 | { grep -v "^WARNING: Location" || true; }

echo "setup: npm ci + JS build"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

echo "setup: installing superwidgets (editable) with lab and test extras"
"${PIP[@]}" -e ".[lab,test]" 2>&1 | { grep -v "^WARNING: Location" || true; }

if [ "${WITH_BROWSER:-0}" = "1" ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium for the browser tests"
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  [ -x /usr/bin/chromium ] || { echo "setup: chromium did not install; the browser tests need /usr/bin/chromium" >&2; exit 1; }
fi
echo "setup: done"
