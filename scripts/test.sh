#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Extra arguments go to pytest
# (e.g. -m "not slow" for the quick subset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec "${CDRSCREEN_VENV:-.venv}/bin/python" -m pytest "$@"
