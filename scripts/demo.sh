#!/usr/bin/env bash
# One command: set up this machine and run the full retraining demo offline.
#   bash scripts/demo.sh [driftgate demo options]
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
exec uv run --frozen driftgate demo "$@"
