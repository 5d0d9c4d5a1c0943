#!/usr/bin/env bash
# Install archevo and everything it needs into .venv at the repository root.
# Without an NVIDIA GPU it installs the CPU build of torch (a bare `torch` would pull CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install torch
  else
    pip install torch==2.13.0
  fi
fi
pip install -e ".[dev]"
