"""What a duplicate group needs to know about a file to choose the one to keep: its pixel count (read
from the picture's header, never a full decode), its size in bytes and its modification time.

Only members of duplicate groups are asked, so a library of a million files costs a few header reads,
not a million decodes.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class FileFacts:
    """A file's pixel count (0 when unreadable), size in bytes and mtime (seconds since the epoch)."""

    pixels: int
    bytes: int
    mtime: float


def pixel_count(path: str | os.PathLike | bytes) -> int | None:
    """Width x height of a picture from its header (Pillow's lazy open), or None when it cannot be read.

    Pipes and devices are never read (the file is opened non-blocking and must be a regular file), and
    only the formats imgret decodes are tried. EXIF rotation does not change the count, so it is ignored.
    """
    from PIL import Image  # here, not at import: a query of library pictures loads no Pillow

    from imgret.runtime import imageio  # loads Pillow's plugins: only `imgret dups` needs them

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    try:
        with os.fdopen(fd, "rb") as fh, warnings.catch_warnings():
            # a decompression-bomb warning is no reason to fail: the header's size is all we want
            warnings.simplefilter("ignore")
            with Image.open(fh, formats=imageio.decodable_formats()) as img:
                width, height = img.size
    except Exception:  # Pillow raises many types for broken headers; a broken file has no pixels
        return None
    return width * height if width > 0 and height > 0 else None


def file_facts(path: str | os.PathLike | bytes) -> FileFacts:
    """:class:`FileFacts` for one file; a missing or unreadable file gets zeros (it will not be kept)."""
    try:
        st = os.stat(path)
    except OSError:
        return FileFacts(pixels=0, bytes=0, mtime=float("inf"))
    return FileFacts(pixels=pixel_count(path) or 0, bytes=st.st_size, mtime=st.st_mtime)
