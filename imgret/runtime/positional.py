"""Reading bytes at an offset of an open file, on every system.

``os.pread`` reads without moving the file's position, so readers sharing a descriptor cannot disturb
each other; Windows has no ``pread``, so there a lock serialises a seek and a read instead.
"""

from __future__ import annotations

import os
import threading

_SEEK_LOCK = threading.Lock()


def read_at(fd: int, count: int, offset: int) -> bytes:
    """Up to ``count`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
    pread = getattr(os, "pread", None)
    if pread is not None:
        return pread(fd, count, offset)
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, count)
