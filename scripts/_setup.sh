# Sourced by scripts/demo.sh and scripts/test.sh: install uv if needed and the locked environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python 3.11; no toolchain downloads
export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
  echo "== installing uv"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
if [[ "${DRIFTGATE_SETUP_TESTS:-0}" == 1 ]]; then
  # What the tests start, from the OS packages: a throwaway PostgreSQL cluster on 127.0.0.1 (devkit/postgres.py)
  # and headless Chromium for the HTML reports (tests/flows/test_demo.py).
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  if (( ${#missing[@]} )); then
    echo "== installing ${missing[*]} (apt-get)"
    SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
echo "== installing the locked environment (uv sync --frozen --compile-bytecode)"
# Bytecode now, once: with PYTHONDONTWRITEBYTECODE set (as on this kind of machine) every fresh `driftgate`
# process would otherwise compile each module it imports again (measured: 4.4 s -> 1.5 s to import the CLI's core).
uv sync --frozen --compile-bytecode --quiet
PYTHONDONTWRITEBYTECODE= uv run --frozen python -m compileall -q -j 0 tasks flows driftgate deployments devkit >/dev/null
# Dependency telemetry off (NannyML, Prefect, W&B) for everything started from here.
export NML_DISABLE_USAGE_LOGGING=1 DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
export WANDB_ERROR_REPORTING=false WANDB__DISABLE_STATS=true WANDB__DISABLE_MACHINE_INFO=true
