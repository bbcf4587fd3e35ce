#!/usr/bin/env bash
# Set up (if needed) and run the whole pipeline on the bundled synthetic demo cohort:
# train the demo expression model -> build cohort -> extract features -> evaluate early and
# late fusion + the feature-group ablation -> write reports.
# Extra arguments go to `cdrscreen demo` (e.g. --subjects 40 --seed 1 --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${CDRSCREEN_VENV:-.venv}/bin/cdrscreen" demo "$@"
