"""Where a library lives when none is named: the one place that reads the environment for it."""

from __future__ import annotations

import os
from pathlib import Path

LIBRARY_ENV = "IMGRET_LIBRARY"
OLD_LIBRARY_ENV = "IMGRET_INDEX"  # the old spelling, still honoured (the CLI notes it is deprecated)


def library_from_env() -> tuple[Path | None, str | None]:
    """``(folder, variable)`` named by ``$IMGRET_LIBRARY`` (or the old ``$IMGRET_INDEX``), else
    ``(None, None)``; the variable's name lets a caller say that the old one is deprecated."""
    for name in (LIBRARY_ENV, OLD_LIBRARY_ENV):
        value = os.environ.get(name)
        if value:
            return Path(value).expanduser(), name
    return None, None


def default_library_dir() -> Path:
    """The library used when none is given: the environment's, else the per-user data folder."""
    folder, _ = library_from_env()
    if folder is not None:
        return folder
    home = Path.home()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "imgret" / "library"
