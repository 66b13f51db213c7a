"""The vectors of a mapped vector file are advised for random reads (no read-ahead around each fault),
in usearch's own mapping too: the kernel shows it as ``rr`` in the mapping's flags."""

from __future__ import annotations

import mmap
import os
import sys

import numpy as np
import pytest

from imgret.runtime import vectors
from imgret.runtime.page_advice import advise_random

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")


def _flags(path: str) -> list[list[str]]:
    """The VmFlags of each mapping of ``path`` from its start, in this process."""
    real, out, current = os.path.realpath(path), [], False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
                current = len(fields) == 6 and fields[5] == real and int(fields[2], 16) == 0
            elif current and line.startswith("VmFlags:"):
                out.append(fields[1:])
    return out


def test_a_mapped_file_is_advised_random_and_an_unmapped_one_is_left_alone(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\0" * (1 << 20))
    assert advise_random(str(path), 1 << 20) == 0
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        assert "rr" not in _flags(str(path))[0]
        assert advise_random(str(path), 1 << 20) == 1
        assert "rr" in _flags(str(path))[0]
        del mapped


def test_usearchs_view_of_a_vector_file_reads_its_vectors_at_random(tmp_path):
    index = vectors.build(np.arange(5000, dtype=np.uint64),
                          np.random.default_rng(1).standard_normal((5000, 64)).astype(np.float32), "cosine")
    path = str(tmp_path / "vectors-1.usearch")
    saved = vectors.save(index, path)
    view = vectors.open_view(path, saved, 64)
    try:
        assert any("rr" in flags for flags in _flags(path))
    finally:
        view.reset()
