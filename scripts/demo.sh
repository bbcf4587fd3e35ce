#!/usr/bin/env bash
# Set up (if needed) and run the whole pipeline on the bundled synthetic demo cohort:
# build cohort -> extract features -> evaluate the default CDR protocol -> write reports.
# Extra arguments go to `cdrscreen demo` (e.g. --subjects 40 --seed 1 --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${CDRSCREEN_VENV:-.venv}/bin/cdrscreen" demo "$@"
