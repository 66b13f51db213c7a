"""Tell the kernel that the vectors of a mapped vector file are read at random.

An HNSW search reads the vectors of the nodes it visits: a few thousand rows scattered over the
file's vectors matrix (512 MB at 1M pictures). Through a memory map, each first touch of a page is a
fault, and from a cold page cache Linux reads ahead around it (128 KB and more) as if the file were
read in order: most of what it reads is never used, and the disk is the bottleneck. ``MADV_RANDOM``
on the matrix's pages stops that: at 1M with the library evicted, the first search took 0.12–0.30 s
instead of 0.76–0.94 s (benchmarks/README.md, "Cold query, round 2"). The graph after the matrix is
walked in order when usearch opens its view, so it keeps the default.

usearch maps the file itself, so its mapping is found by path in ``/proc/self/maps``. Only a hint:
on another system, or if anything fails, nothing happens.
"""

from __future__ import annotations

import os
import sys

MADV_RANDOM = 1  # <sys/mman.h> on Linux


def advise_random(path: str, nbytes: int) -> int:
    """Advise ``MADV_RANDOM`` on the first ``nbytes`` of every mapping of ``path`` from its start,
    in this process. Returns how many mappings were advised (0 where this is not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        import ctypes

        real = os.path.realpath(path)
        libc = ctypes.CDLL(None, use_errno=True)
        page = os.sysconf("SC_PAGE_SIZE")
        advised = 0
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.rstrip("\n").split(maxsplit=5)
                if len(fields) < 6 or fields[5] != real or int(fields[2], 16) != 0:
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                length = min(end - start, nbytes // page * page)
                if length > 0 and libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(length), MADV_RANDOM) == 0:
                    advised += 1
        return advised
    except (OSError, ValueError, AttributeError):
        return 0
