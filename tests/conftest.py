"""Set-up shared by every test: kept weights go to a scratch folder, never into the repository
(campaigns keep their top 10 by default, in ``$ARCHEVO_WEIGHTS_DIR``; subprocesses inherit it)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "ARCHEVO_WEIGHTS_DIR" not in os.environ:
    os.environ["ARCHEVO_WEIGHTS_DIR"] = tempfile.mkdtemp(prefix="archevo-test-weights-")
    atexit.register(shutil.rmtree, os.environ["ARCHEVO_WEIGHTS_DIR"], ignore_errors=True)
