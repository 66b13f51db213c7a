"""The library's writer lock: one process at a time may write, readers never wait."""

from __future__ import annotations

from pathlib import Path

from imgret.errors import LibraryLockedError


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
        """Let another writer in (closing the file drops the flock)."""
        if not self.fh.closed:
            self.fh.close()
