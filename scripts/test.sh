#!/usr/bin/env bash
# Lint (ruff) and run the whole test suite (unit and integration tests) on the CPU, installing first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check --quiet .   # lint first: an unused or undefined name fails in seconds
exec .venv/bin/python -m pytest "$@"
