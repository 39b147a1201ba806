"""Where convcov keeps its files, and keeping user-given paths inside those places.

    convcov_home() = $CONVCOV_HOME, else ~/.convcov          (run store, caches)
    data_root()    = $CONVCOV_DATA, else convcov_home()/data (datasets, image folders)
    REPO_REPORTS   = reports/ of a source checkout            (committed reports)
"""

from __future__ import annotations

import os
from pathlib import Path

from . import settings

#: The committed reports of a source checkout; the claims page also looks in $CONVCOV_HOME/reports.
REPO_REPORTS = Path(__file__).resolve().parents[1] / "reports"


def convcov_home() -> Path:
    """$CONVCOV_HOME or ~/.convcov (settings.home), created if missing."""
    home = settings.home()
    home.mkdir(parents=True, exist_ok=True)
    return home


def runs_path() -> Path:
    """The run store's SQLite file: convcov_home()/runs.db."""
    return convcov_home() / "runs.db"


def data_root() -> Path:
    """$CONVCOV_DATA or convcov_home()/data, created if missing."""
    root = settings.data() or convcov_home() / "data"
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve_inside(root: str | os.PathLike, user_path: str | os.PathLike) -> Path:
    """The absolute path that `user_path` names inside `root`, symlinks resolved.

    Relative paths are taken from `root`; an absolute path is accepted only if it lies inside `root`.
    Raises ValueError for an empty path, any ".." component, or a path (or symlink target) outside root.
    """
    text = str(user_path).strip()
    if not text:
        raise ValueError("empty path: name a folder inside the data root")
    if ".." in Path(text).parts:
        raise ValueError(f"path {text!r} contains '..'; give a path inside {root} without '..'")
    base = Path(root).expanduser().resolve()
    candidate = Path(text).expanduser()
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"path {text!r} is outside {base}; put the files inside that folder")
    return resolved
