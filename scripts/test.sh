#!/usr/bin/env bash
# One command: set up this machine and run lint, type checks and every test (integration included).
#   bash scripts/test.sh [pytest options]
export DRIFTGATE_SETUP_TESTS=1   # also install what the tests start: PostgreSQL
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
echo "== ruff"
uv run --frozen ruff check .
uv run --frozen ruff format --check .
echo "== mypy (tasks/, flows/, driftgate/, deployments/, devkit/)"
uv run --frozen mypy
echo "== pytest"
exec uv run --frozen pytest -p no:cacheprovider "$@"
