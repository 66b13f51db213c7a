"""The files an index run will read, kept off the heap.

A first index of a million pictures walks the whole tree before it embeds anything (so that it knows
how much there is to do and what vanished). Held as Python objects, its list of files cost ~450 bytes
a picture: 450 MB at 1M, growing with the library. :class:`FoundList` packs each file into one binary
record (sizes, times, inode, the path as bytes) in a buffer that moves to an unnamed temporary file
once it passes :data:`SPILL_BYTES`; only an 8-byte offset per file stays in memory. Records are plain
``struct`` bytes, read back by offset: nothing is pickled.
"""

from __future__ import annotations

import os
import struct
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from imgret.runtime.fileio import read_at
from imgret.runtime.scan import Found

SPILL_BYTES = 4 << 20  # below this the records stay in memory (a run of ~40,000 files)
_HEAD = struct.Struct("<QqQQI")  # size, mtime_ns, device, inode, length of the path in bytes
_READ_BYTES = 1 << 20  # how much a sequential read takes at once


class FoundList:
    """An append-only list of :class:`~imgret.runtime.scan.Found`, packed, spilled to disk when large.

    Iterating yields the records in order; :attr:`paths` is a read-only sequence of their paths (what
    a decode source takes). Close it (or use it as a context manager) to drop the temporary file.
    """

    def __init__(self, items: Iterable[Found] = (), *, spill_bytes: int | None = None) -> None:
        self._offsets = array("q")
        self._buffer = bytearray()
        self._file = None  # the unnamed temporary file, once spilled
        self._end = 0  # bytes written in all
        self._spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        for item in items:
            self.append(item)

    def append(self, found: Found) -> None:
        """Add one file at the end."""
        name = os.fsencode(found.path)  # surrogate escapes give back the exact bytes of odd names
        dev, ino = found.inode
        self._offsets.append(self._end)
        record = _HEAD.pack(found.size, found.mtime_ns, dev, ino, len(name)) + name
        self._buffer += record
        self._end += len(record)
        if len(self._buffer) >= self._spill_bytes:
            self._flush()

    def __len__(self) -> int:
        return len(self._offsets)

    def __iter__(self) -> Iterator[Found]:
        return self._records(0, len(self))

    def found(self, index: int) -> Found:
        """The ``index``-th record."""
        return next(self._records(index, index + 1))

    @property
    def paths(self) -> _Paths:
        """The paths, in order, as a sequence (``len``, indexing and slicing read only what they need)."""
        return _Paths(self)

    def close(self) -> None:
        """Drop the records and the temporary file, if there is one."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = bytearray()
        self._offsets = array("q")
        self._end = 0

    def __enter__(self) -> FoundList:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flush(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="imgret-todo-")
        self._file.seek(0, os.SEEK_END)
        self._file.write(self._buffer)
        self._buffer = bytearray()

    def _read(self, start: int, stop: int) -> bytes:
        """Bytes ``start:stop`` of all records written, wherever they are now."""
        on_disk = self._end - len(self._buffer)
        parts = []
        if start < on_disk:
            self._file.flush()
            parts.append(read_at(self._file.fileno(), min(stop, on_disk) - start, start))
        if stop > on_disk:
            parts.append(bytes(self._buffer[max(start, on_disk) - on_disk:stop - on_disk]))
        return b"".join(parts)

    def _records(self, first: int, last: int) -> Iterator[Found]:
        """Records ``first`` up to (not including) ``last``, read in blocks of about :data:`_READ_BYTES`."""
        offsets, end = self._offsets, self._end
        i = first
        while i < last:
            j = i + 1
            while j < last and offsets[j] - offsets[i] < _READ_BYTES:
                j += 1
            stop = offsets[j] if j < len(offsets) else end
            block, base = self._read(offsets[i], stop), offsets[i]
            for k in range(i, j):
                at = offsets[k] - base
                size, mtime_ns, dev, ino, length = _HEAD.unpack_from(block, at)
                start = at + _HEAD.size
                yield Found(os.fsdecode(block[start:start + length]), size, mtime_ns, (dev, ino))
            i = j


class _Paths(Sequence[str]):
    """The paths of a :class:`FoundList`, in order."""

    def __init__(self, owner: FoundList) -> None:
        self._owner = owner

    def __len__(self) -> int:
        return len(self._owner)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index):
        n = len(self._owner)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:
                return [f.path for f in self._owner._records(start, max(start, stop))]
            return [self._owner.found(i).path for i in range(start, stop, step)]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("FoundList index out of range")
        return self._owner.found(index).path

    def __iter__(self) -> Iterator[str]:
        return (f.path for f in self._owner)
