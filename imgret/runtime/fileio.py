"""Reading files: bytes at an offset of an open file, and a whole file's SHA-256, on every system.

``os.pread`` reads without moving the file's position, so readers sharing a descriptor cannot disturb
each other; Windows has no ``pread``, so there a lock serialises a seek and a read instead.
"""

from __future__ import annotations

import hashlib
import os
import threading

_SEEK_LOCK = threading.Lock()
_BLOCK = 1 << 20


def read_at(fd: int, count: int, offset: int) -> bytes:
    """Up to ``count`` bytes of ``fd`` from ``offset`` (fewer at the end of the file)."""
    pread = getattr(os, "pread", None)
    if pread is not None:
        return pread(fd, count, offset)
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, count)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a whole file, in hex, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
