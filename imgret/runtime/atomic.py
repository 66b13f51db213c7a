"""The one way imgret replaces a file: write a temporary file beside it, flush, fsync, rename, fsync
the folder.

A reader therefore sees the old file or the new one, never half of one, and a crash (kill -9, power
cut) leaves the previous version in place. Every file imgret writes for keeps (vector file, catalogue
side files, checkpoints, run config and history, plots, ONNX exports, decode caches) goes through here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file beside ``path``; on a clean exit it atomically becomes ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    with replacing_path(path) as tmp, open(tmp, "wb") as fh:  # closed (flushed) before the fsync
        yield fh


@contextlib.contextmanager
def replacing_path(path: str | os.PathLike) -> Iterator[str]:
    """Like :func:`replacing`, for writers that want a file name (usearch's ``Index.save``): yields the
    temporary path; on a clean exit the file is fsynced and atomically becomes ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    import tempfile  # here, not at import: it loads shutil, bz2 and lzma, which readers never need

    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + "-", suffix=TEMP_SUFFIX, dir=folder)
    try:
        _give_mode(fd, path)
        try:
            yield tmp
            os.fsync(fd)  # fsync covers the file, whichever handle wrote it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)


def _give_mode(fd: int, path: str) -> None:
    """Give the temporary file the permissions ``path`` has, or those a new file gets under the
    umask: mkstemp makes it owner-only (0600), which a montage, an export or a library's vector file
    would otherwise keep after the rename."""
    if not hasattr(os, "fchmod"):
        return
    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    os.fchmod(fd, mode)


_UMASK: list[int] = []  # read once: the process's umask, which Python can only read by setting it


def _umask() -> int:
    if not _UMASK:
        try:  # Linux says it without changing it (a change, even undone at once, races other threads)
            with open("/proc/self/status") as status:
                line = next(x for x in status if x.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError, IndexError):
            current = os.umask(0o022)
            os.umask(current)
            _UMASK.append(current)
    return _UMASK[0]


def write_bytes(path: str | os.PathLike, data: bytes | bytearray | memoryview) -> None:
    """Atomically replace ``path`` with ``data``."""
    with replacing(path) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], object]) -> None:
    """Atomically replace ``path`` with whatever ``writer(fh)`` writes to a binary file object
    (``torch.save``, ``numpy.save``, ``PIL.Image.save``, ``onnx.save`` all take one)."""
    with replacing(path) as fh:
        writer(fh)


def remove_stale_temps(folder: str | os.PathLike, name: str) -> None:
    """Remove temporary files left beside ``folder/name`` by a writer that was killed mid-write.

    Only the writer that holds the file's lock may call this.
    """
    prefix = "." + name + "-"
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for entry in names:
        if entry.startswith(prefix) and entry.endswith(TEMP_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
