#!/usr/bin/env bash
# Run the whole test suite (unit and integration tests) on the CPU, installing first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
