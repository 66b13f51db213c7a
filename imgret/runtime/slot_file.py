"""The vector file's key → slot table, ``vectors-N.slots.npy``, and stored vectors read through it.

usearch can look a key up in a mapped file only after building a key → slot hash table over every
node of the graph on open (0.2 s of CPU at 1M pictures, ~30 MB). A query needs a handful of stored
vectors (its own picture's, and its hits' to fold copies), so the writer records the table once, when
it writes the vector file: the keys sorted, with the slot of each, as one ``(2, N)`` uint64 ``.npy``
(16 bytes a picture) written atomically beside the vector file and recorded, with its SHA-256 and
size, in the same catalogue transaction. A reader checks it whole (~10 ms at 1M), maps it, finds a
key by binary search and reads the vector at that slot straight from the mapped vector file; usearch
then opens its view without key lookups.

The layout read here is usearch 2's dense file (``docs/format.md`` of unum-cloud/usearch): a matrix
of ``rows`` x ``cols`` bytes after two uint32 (rows, bytes per row); then a 64-byte header starting
``usearch``; then the graph: five uint64 (size, connectivity, base connectivity, max level, entry
slot), one int16 level per node, then the nodes in slot order, each a uint64 key, an int16 level and
its neighbour lists (uint32 count + uint32 slots: base connectivity at level 0, connectivity above).
A removed slot keeps the key ``2**64 - 1``. ``tests/test_slot_file.py`` checks this against
``Index.get`` for f32, f16 and i8 files with removals and re-adds; a file that does not parse so is
refused (:class:`~imgret.runtime.vectors.IndexDamaged`), and the reader falls back to usearch's own
key table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgret.runtime.fileio import file_sha256, read_at
from imgret.runtime.vector_layout import MAGIC, STORED_TYPES, IndexDamaged, graph_layout, matrix_shape

SUFFIX = ".slots.npy"
FREE_KEY = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class SavedSlots:
    """What the catalogue records about a slot file."""

    sha256: str
    size: int


def name_for(vector_name: str) -> str:
    """The slot file's name beside the vector file ``vector_name`` (``vectors-3.usearch`` →
    ``vectors-3.slots.npy``)."""
    return vector_name.removesuffix(".usearch") + SUFFIX


def slot_keys(vector_path: str) -> np.ndarray:
    """The key of every slot of a usearch vector file, in slot order (:data:`FREE_KEY` for a removed
    slot), read from the node headers of its graph."""
    raw = np.memmap(vector_path, dtype=np.uint8, mode="r")
    layout = graph_layout(raw)
    if layout.size == 0:
        return np.zeros(0, dtype=np.uint64)
    node_bytes = layout.base_bytes + layout.levels.astype(np.int64) * layout.upper_bytes
    starts = layout.nodes_at + np.concatenate([[0], np.cumsum(node_bytes)[:-1]]).astype(np.int64)
    if int(starts[-1] + node_bytes[-1]) != len(raw):
        raise IndexDamaged("vector file's graph does not end where the file does")
    keys = raw[starts[:, None] + np.arange(8)].copy()  # each node starts with its uint64 key
    del raw, layout
    return keys.view("<u8").reshape(-1)


def table_of(vector_path: str) -> np.ndarray:
    """The ``(2, N)`` key → slot table of a vector file: its live keys sorted, and the slot of each."""
    keys = slot_keys(vector_path)
    slots = np.flatnonzero(keys != FREE_KEY).astype(np.uint64)
    keys = keys[slots.astype(np.int64)]
    order = np.argsort(keys, kind="stable")
    return np.stack([keys[order], slots[order]])


def write(vector_path: str, slots_path: str) -> SavedSlots:
    """Write the key → slot table of ``vector_path`` to ``slots_path`` (atomically, fsynced) and
    return its checksum record. Only the writer calls this."""
    from imgret.runtime import atomic  # the write path only

    table = table_of(vector_path)
    atomic.write_with(slots_path, lambda fh: np.save(fh, table, allow_pickle=False))
    return checksum(slots_path)


def table_matches(vector_path: str, slots_path: str) -> bool:
    """Whether the slot file holds exactly the table of the vector file (``imgret check``)."""
    try:
        return bool(np.array_equal(np.load(slots_path, allow_pickle=False), table_of(vector_path)))
    except (OSError, ValueError):
        return False


def checksum(path: str) -> SavedSlots:
    """SHA-256 and size of a slot file."""
    return SavedSlots(file_sha256(path), os.path.getsize(path))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise IndexDamaged(f"cannot read the vector file's slot table: {exc.strerror}") from exc


def verify(path: str, expected: SavedSlots) -> None:
    """Raise :class:`IndexDamaged` unless the slot file has its recorded size and SHA-256."""
    try:
        if os.path.getsize(path) != expected.size or checksum(path).sha256 != expected.sha256:
            raise IndexDamaged("the vector file's slot table does not match its checksum")
    except OSError as exc:
        raise IndexDamaged(f"cannot read the vector file's slot table: {exc.strerror}") from exc


class StoredVectors:
    """Stored vectors by key, without usearch: the checked slot table, memory-mapped (a look-up reads
    a few of its pages), and the vector file, read row by row at its offset (no second mapping of a
    file usearch maps too: its pages would count twice in the process's memory). Vectors come back
    as float32, decoded as usearch's ``get(key, dtype=float32)`` does (i8: the code times 1/127)."""

    def __init__(self, vector_path: str, slots_path: str, expected: SavedSlots, *,  # noqa: PLR0913
                 dim: int, dtype: str, count: int, confirm: Callable[[int], int] | None = None) -> None:
        """Check the slot file against ``expected``, map it and open the vector file;
        :class:`IndexDamaged` if the slot file or the vector file's layout do not match ``dim``,
        ``dtype`` and ``count``.

        ``confirm`` (slot -> the key the vector file stores there, e.g.
        :meth:`~imgret.runtime.graph_file.GraphFile.key_at`): the table is not read whole up front
        (~15 ms at 1M pictures); instead every slot it gives is confirmed against the vector file,
        and a key it does not find makes it check itself whole, once. Either way a damaged table
        never gives a wrong vector: it raises :class:`IndexDamaged`."""
        self.slots_path, self.expected, self.confirm = slots_path, expected, confirm
        self.checked = confirm is None
        if confirm is None:
            verify(slots_path, expected)
        elif _size(slots_path) != expected.size:
            raise IndexDamaged("the vector file's slot table is not the size recorded")
        self.fd = -1
        try:
            table = np.load(slots_path, mmap_mode="r", allow_pickle=False)
            self.fd = os.open(vector_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # no newline translation on Windows
            self.rows, self.row_bytes = self._layout()
        except IndexDamaged:
            self.close()
            raise
        except (OSError, ValueError) as exc:
            self.close()
            raise IndexDamaged(f"cannot read the vector file or its slot table: {exc}") from exc
        self.stored = np.dtype(STORED_TYPES[dtype])
        if table.shape != (2, count) or table.dtype != np.uint64 or self.row_bytes != dim * self.stored.itemsize:
            self.close()
            raise IndexDamaged("the vector file's slot table or layout does not match the catalogue")
        self.keys, self.slots = table[0], table[1]
        # usearch decodes i8 as code x (1/127) in float32; the same arithmetic gives the same bits
        self.scale = np.float32(1 / 127) if dtype == "i8" else None

    def _layout(self) -> tuple[int, int]:
        """``(rows, bytes per row)`` of the open vector file, after checking usearch's header follows
        the matrix where its first eight bytes say."""
        rows, cols = matrix_shape(read_at(self.fd, 8, 0))
        if read_at(self.fd, len(MAGIC), 8 + rows * cols) != MAGIC:
            raise IndexDamaged("vector file's layout is not usearch 2's dense layout")
        return rows, cols

    def slot(self, key: int) -> int | None:
        """The slot of ``key`` in the vector file, or ``None``."""
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        if i < len(self.keys) and int(self.keys[i]) == key:
            return self._confirmed(int(self.slots[i]), key)
        self._check_whole()  # not found: absent, or a damaged table led the search astray
        return None

    def _confirmed(self, slot: int, key: int) -> int:
        if self.confirm is not None and (slot >= self.rows or self.confirm(slot) != key):
            raise IndexDamaged("the vector file's slot table does not give the slots the vector file holds")
        return slot

    def _check_whole(self) -> None:
        if not self.checked:
            verify(self.slots_path, self.expected)
            self.checked = True

    def _row(self, slot: int) -> np.ndarray | None:
        data = read_at(self.fd, self.row_bytes, 8 + slot * self.row_bytes)
        if len(data) != self.row_bytes:
            return None
        vec = np.frombuffer(data, dtype=self.stored).astype(np.float32)
        return vec * self.scale if self.scale is not None else vec

    def get(self, key: int) -> np.ndarray | None:
        """The stored vector of ``key`` as float32, or ``None``."""
        slot = self.slot(key)
        return None if slot is None or slot >= self.rows else self._row(slot)

    def get_many(self, keys: list[int]) -> dict[int, np.ndarray]:
        """The stored vectors of those ``keys`` the file holds, as float32 rows by key (one binary
        search for all of them, then the rows in file order)."""
        if not keys or not len(self.keys):
            return {}
        want = np.asarray(keys, dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.keys, want), len(self.keys) - 1)
        hit = np.asarray(self.keys[at]) == want
        if not hit.all():
            self._check_whole()
        found = sorted(zip(np.asarray(self.slots[at[hit]]).tolist(), want[hit].tolist()))
        found = [(self._confirmed(slot, key), key) for slot, key in found]
        out = {}
        for slot, key in found:
            vec = self._row(slot) if slot < self.rows else None
            if vec is not None:
                out[key] = vec
        return out

    def close(self) -> None:
        """Unmap the slot table and close the vector file."""
        self.keys = self.slots = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
