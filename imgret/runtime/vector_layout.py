"""What every reader of the vector file shares, usearch or not: the error for a file that does not
match the catalogue, and the matrix header that opens usearch 2's dense file. Kept apart so that
imgret's own readers (:mod:`~imgret.runtime.slot_file`, :mod:`~imgret.runtime.graph_file`) need
neither usearch nor :mod:`~imgret.runtime.vectors`, which opens them."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# How the vector file stores a vector, by imgret's name of the type (catalogue meta ``vector_dtype``).
STORED_TYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8}


class IndexDamaged(Exception):
    """The vector file does not match what the catalogue recorded."""


def matrix_shape(head: bytes) -> tuple[int, int]:
    """``(rows, bytes per row)`` of the vectors matrix that opens a usearch dense file, from the file's
    first eight bytes (two little-endian uint32); :class:`IndexDamaged` when there are not eight."""
    if len(head) < 8:
        raise IndexDamaged("vector file is too short to hold a usearch header")
    rows, cols = struct.unpack_from("<II", head, 0)
    return rows, cols


MAGIC = b"usearch"  # what the 64-byte header after the matrix starts with
HEADER_BYTES = 64
GRAPH_FIELDS = 40  # after the header: five uint64 (size, connectivity, base connectivity, top level, entry)
NODE_HEAD = 10  # each node: its uint64 key, its int16 level, then its neighbour lists


@dataclass(frozen=True)
class GraphLayout:
    """Where things are in a usearch 2 dense file (the matrix, the header, the graph's nodes), as
    :func:`graph_layout` reads it; ``levels`` is a view of the file (one int16 a node)."""

    rows: int
    cols: int
    head: int  # where the 64-byte header starts
    size: int
    conn: int
    conn0: int
    max_level: int
    entry: int
    levels: np.ndarray
    nodes_at: int

    @property
    def base_bytes(self) -> int:
        """A node's key, level and base-level neighbour list (count + ``conn0`` slots)."""
        return NODE_HEAD + 4 + 4 * self.conn0

    @property
    def upper_bytes(self) -> int:
        """One upper-level neighbour list (count + ``conn`` slots)."""
        return 4 + 4 * self.conn


def graph_layout(raw) -> GraphLayout:
    """The layout of a mapped usearch 2 dense file (``mmap`` or ``np.memmap``): the matrix's shape,
    usearch's header after it, the graph's sizes and the nodes' levels; :class:`IndexDamaged` when
    the file is not laid out so. The readers check the rest (:mod:`~imgret.runtime.slot_file`,
    :mod:`~imgret.runtime.graph_file`)."""
    rows, cols = matrix_shape(bytes(raw[:8]))
    head = 8 + rows * cols
    if bytes(raw[head:head + len(MAGIC)]) != MAGIC:
        raise IndexDamaged("vector file's layout is not usearch 2's dense layout")
    levels_at = head + HEADER_BYTES + GRAPH_FIELDS
    if levels_at > len(raw):
        raise IndexDamaged("vector file's graph does not match its vectors")
    size, conn, conn0, max_level, entry = struct.unpack_from("<5Q", raw, head + HEADER_BYTES)
    if size != rows or levels_at + 2 * size > len(raw):
        raise IndexDamaged("vector file's graph does not match its vectors")
    levels = np.frombuffer(raw, dtype="<i2", count=size, offset=levels_at)
    return GraphLayout(rows, cols, head, size, conn, conn0, max_level, entry, levels, levels_at + 2 * size)
