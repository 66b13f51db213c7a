"""What ``imgret index --dtype f16|i8`` costs in recall and saves in bytes, on a real library's vectors.

    python benchmarks/vector_dtype.py [--library /work/bench-cache/scale/lib100k] [--vectors 20000]

Copies the library to a temporary folder (never opens the cached one), reads its settled vectors
(float32, as the encoder gave them), takes the first ``--vectors`` of them, and for each type builds
the vector file a library of that type would have (:func:`imgret.runtime.vectors.build` with the
library's settings, saved with :func:`imgret.runtime.vectors.save`). Queries: 200 library vectors
plus a little noise (pictures close to library ones, as in ``scale.py``). The truth is an exact
float32 scan; each type's recall@10 is given for its HNSW search (what libraries above
``EXACT_SEARCH_LIMIT`` use) and for an exact scan of its own stored vectors (below it). Prints a
line of JSON per type. About 1.5 min at 20,000 vectors on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
QUERIES, K = 200, 10


def library_vectors(library: Path, count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``count`` settled keys and float32 vectors of a copy of ``library``, and its metric."""
    from imgret.runtime import vectors
    from imgret.runtime.library import Library

    with tempfile.TemporaryDirectory(prefix="imgret-dtype-") as tmp:
        copy = Path(tmp) / "lib"
        shutil.copytree(library, copy, ignore=shutil.ignore_patterns("lock", "*-shm", "*-wal"))
        with Library.open(copy) as lib:
            settled = lib.vector_file.searchable().settled
            keys = np.sort(np.asarray(settled.keys, dtype=np.uint64))[:count]
            data = vectors.stored_vectors(settled, keys).reshape(len(keys), -1)
            metric = lib.encoder.metric
            lib.vector_file.forget()
    return keys, data, metric


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true top K found, averaged over queries."""
    return round(float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, truth)])), 4)


def measure(library: tuple[np.ndarray, np.ndarray, str], queries: np.ndarray, truth: np.ndarray, dtype: str) -> dict:
    """Build, save and search one type's vector file over ``library`` (keys, vectors, metric)."""
    from imgret.runtime import vectors

    keys, data, metric = library
    start = time.perf_counter()
    index = vectors.build(keys, data, metric, dtype)
    built = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="imgret-dtype-") as tmp:
        size = vectors.save(index, os.path.join(tmp, "vectors-1.usearch")).size
    return {"dtype": dtype, "vectors": len(keys), "file_bytes": size, "bytes_per_picture": round(size / len(keys)),
            "recall@10_hnsw": recall(index.search(queries, K).keys, truth),
            "recall@10_exact_scan": recall(index.search(queries, K, exact=True).keys, truth),
            "build_s": round(built, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", type=Path, default=Path("/work/bench-cache/scale/lib100k"))
    parser.add_argument("--vectors", type=int, default=20_000)
    args = parser.parse_args()
    from imgret.runtime import vectors

    print(json.dumps({"what": "machine", "cpus": os.cpu_count(), "load": os.getloadavg(),
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}), flush=True)
    library = library_vectors(args.library, args.vectors)
    keys, data, metric = library
    rng = np.random.default_rng(1)
    queries = data[rng.choice(len(data), QUERIES, replace=False)]
    queries = queries + rng.normal(0, 0.01, queries.shape).astype(np.float32)
    truth = vectors.build(keys, data, metric).search(queries, K, exact=True).keys
    for dtype in vectors.VECTOR_DTYPES:
        print(json.dumps(measure(library, queries, truth, dtype)), flush=True)


if __name__ == "__main__":
    main()
