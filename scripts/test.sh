#!/usr/bin/env bash
# Lint and format-check (ruff) and run the whole test suite (unit and integration tests) on the CPU, installing first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check --quiet .   # lint first: an unused or undefined name fails in seconds
.venv/bin/ruff format --check --quiet .   # one style: `ruff format .` fixes it
.venv/bin/mypy   # types: the packages [tool.mypy] in pyproject.toml names
exec .venv/bin/python -m pytest "$@"
