"""Small pieces of a library that need no model: where it lives, its writer lock, and result types."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from imgret.errors import LibraryLockedError


def default_library_dir() -> Path:
    """The per-user library: ``$IMGRET_INDEX``, else the platform's user data directory."""
    env = os.environ.get("IMGRET_INDEX")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "imgret" / "library"


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    path: str
    distance: float


@dataclass(frozen=True)
class QueryResult:
    """The results for one query picture."""

    query: str
    hits: list[Hit]


@dataclass
class IndexReport:
    """What an index run did; ``skipped`` maps each reason to the paths skipped for it."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    reused: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    previously_skipped: int = 0
    seconds: float = 0.0

    def skip(self, path: str, reason: str) -> None:
        self.skipped.setdefault(reason, []).append(path)

    @property
    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())


class WriterLock:
    """An exclusive, non-blocking flock on the library's ``lock`` file, held while writing."""

    def __init__(self, path: Path) -> None:
        import fcntl

        self.fh = open(path, "a+b")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.fh.close()
            raise LibraryLockedError(
                f"library {path.parent} is locked: another `imgret index` is writing to it; "
                "wait for it to finish"
            ) from exc

    def release(self) -> None:
        if not self.fh.closed:
            self.fh.close()
