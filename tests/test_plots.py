"""Figures: importing the package chooses no matplotlib backend (notebooks keep theirs)."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_package_leaves_the_backend_alone():
    code = "import matplotlib, vlmgrpo.plots, vlmgrpo.train; print(matplotlib.get_backend())"
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg"
