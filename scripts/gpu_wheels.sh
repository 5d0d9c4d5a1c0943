#!/usr/bin/env bash
# Download, here, the wheels that the device image lacks (pydantic and SQLAlchemy with their
# needs; Ray's wheel is over the device tool's 64 MiB limit, so the check runs in-process), at
# the versions of this .venv, for the device's Python 3.12 on x86-64, into .whl/ (ignored by git;
# carried with `carry: [".whl"]`). scripts/gpu_check.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
pins=$(.venv/bin/python - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in
      ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "sqlalchemy")))
PY
)
rm -rf .whl && mkdir .whl
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl $pins
ls .whl
