"""Files and folders this process cannot write, as on a read-only mount or after `chattr +i`."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(*paths):
    """Make `paths` unwritable for this process for the block, and restore them after. With `chattr +i`
    (immutable: root cannot write either; it needs root and a file system with the flag, e.g. ext4),
    else, for a user other than root, by taking write permission away (root ignores permissions).
    Skips the test where neither makes them unwritable. Yields how: "chattr +i" or "chmod"."""
    paths = [Path(p) for p in paths]
    modes = {p: p.stat().st_mode for p in paths}
    how = None
    if shutil.which("chattr"):
        done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True)
        how = "chattr +i" if done.returncode == 0 else None
    if how is None and hasattr(os, "geteuid") and os.geteuid() != 0:
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        how = "chmod"
    try:
        if how is None or any(os.access(p, os.W_OK) for p in paths):
            pytest.skip("cannot make a file read-only here: chattr +i needs root and a file system with the "
                        "flag, and root ignores permissions")
        yield how
    finally:
        if shutil.which("chattr"):
            subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True)
        for p, mode in modes.items():
            p.chmod(mode)
