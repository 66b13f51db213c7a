"""What every reader of the vector file shares, usearch or not: the error for a file that does not
match the catalogue, and the matrix header that opens usearch 2's dense file. Kept apart so that
imgret's own readers (:mod:`~imgret.runtime.slot_file`, :mod:`~imgret.runtime.graph_file`) need
neither usearch nor :mod:`~imgret.runtime.vectors`, which opens them."""

from __future__ import annotations

import struct

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
