#!/usr/bin/env bash
# The device check (benchmarks/gpu_check.py): ≤ 10 minutes on one H100/H200, figures to $OUT
# (or --out DIR). On the device machine, whose image lacks pydantic and SQLAlchemy, first run
# ./scripts/gpu_wheels.sh here and carry .whl: this script installs those wheels there. Ray
# cannot travel (its wheel is over the tool's limit): the check's search runs in-process.
#
#   device run:  ./scripts/gpu_check.sh            (carry: [".whl"], timeout_s 600)
#   here / CI:   ./scripts/gpu_check.sh --dry-run  (every step on the CPU at tiny sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
if [ ! -x "$python" ]; then  # the device machine: its python3 holds torch
    python=python3
    if [ -d .whl ]; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
export PYTHONUNBUFFERED=1
exec "$python" benchmarks/gpu_check.py "$@"
