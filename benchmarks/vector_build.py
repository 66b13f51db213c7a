"""How long building the vector file takes, and how much memory, at 100,000 and 1,000,000 pictures.

    python benchmarks/vector_build.py --sizes 100000,1000000 [--dtypes f32,f16,i8]
    python benchmarks/vector_build.py --refresh /work/bench-cache/scale/lib100k

Does what ``VectorFile.refresh`` does when it writes a new file: a usearch index from
:func:`imgret.runtime.vectors.new_index` (the library's settings), vectors added in chunks of 8,192
(as they stream out of the catalogue), then :func:`imgret.runtime.vectors.save` (temporary file,
fsync, rename, checksums). Each size runs in a fresh process, so the peak memory (``ru_maxrss``) is
its own; "peak over base" is that peak less the process's memory before the build. The vectors are
synthetic but shaped like real ones: 128-d, L2-normalised, drawn around 2,000 random centres (pictures
come in kinds), made in the process chunk by chunk so they never sit in memory whole. "peak over base" starts
after onnxruntime and usearch are loaded (a refresh runs in a process that has them: the encoder
ran); "peak over start" counts them too (~35 MB). ``--dtypes`` builds with the other vector types a
library may store (``imgret index --dtype``); recall of each index's HNSW search against an exact
scan of the same index, 1,000 queries, is printed beside them. A line of JSON per build.
Takes ~1.5 min per dtype at 100k and ~11 min at 1M on 2 cores. ``--refresh LIBRARY`` measures the
real path instead, ``VectorFile.refresh(force=True)`` on a copy of a library (a few seconds at 100k).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DIM, CHUNK, CENTRES = 128, 8192, 2000


def _chunks(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        v = centres[rng.integers(0, CENTRES, m)] + 0.6 * rng.standard_normal((m, DIM)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        yield np.arange(start, start + m, dtype=np.uint64), v


def one(n: int, dtype: str) -> dict:
    """Build, save and measure one index in this process."""
    from imgret.runtime import vectors

    start_rss = _peak_mb()
    index = vectors.new_index(DIM, "cosine", dtype)
    # What a refresh's process holds before it builds: onnxruntime and usearch loaded (the encoder
    # ran), an empty index. "peak over base" is measured from here; "over start" also counts them.
    base = _peak_mb()
    start = time.perf_counter()
    for keys, vecs in _chunks(n):
        index.add(keys, vecs)
    built = time.perf_counter() - start
    in_memory = index.memory_usage / 2**20
    with tempfile.TemporaryDirectory(dir=os.environ.get("BUILD_TMP")) as tmp:
        start = time.perf_counter()
        saved = vectors.save(index, os.path.join(tmp, "vectors-1.usearch"))
        wrote = time.perf_counter() - start
    peak, file_mb = _peak_mb(), saved.size / 2**20
    row = {"n": n, "dtype": dtype, "build_s": round(built, 1), "save_s": round(wrote, 1),
           "file_mb": round(file_mb, 1), "bytes_per_vector": round(saved.size / n),
           "usearch_memory_mb": round(in_memory), "imports_mb": round(base - start_rss),
           "peak_over_base_mb": round(peak - base), "peak_over_file": round((peak - base) / file_mb, 2),
           "peak_over_start_mb": round(peak - start_rss)}
    row["recall@10_vs_exact"] = _recall(index, n)
    return row


def refresh(library: str) -> dict:
    """The real path on a copy of a real library: ``VectorFile.refresh(force=True)`` loads its vector
    file whole (checked), drops stale keys, adds the pending vectors, saves a new file and records it."""
    import shutil

    from imgret.runtime.library import Library

    with tempfile.TemporaryDirectory(prefix="imgret-build-", dir=os.environ.get("BUILD_TMP")) as tmp:
        copy = os.path.join(tmp, "lib")
        shutil.copytree(library, copy, ignore=shutil.ignore_patterns("lock", "*-shm", "*-wal"))
        with Library.open_writable(copy) as lib:
            start_rss = _peak_mb()  # the encoder, onnxruntime and usearch are loaded, as in `imgret index`
            start = time.perf_counter()
            outcome = lib.vector_file.refresh(force=True)
            took = time.perf_counter() - start
            peak, file_mb = _peak_mb(), int(lib.catalogue.get_meta("index_size")) / 2**20
            count = int(lib.catalogue.get_meta("index_count"))
    return {"refresh": outcome, "n": count, "dtype": lib.vector_file.dtype, "seconds": round(took, 1),
            "file_mb": round(file_mb, 1), "peak_over_base_mb": round(peak - start_rss),
            "peak_over_file": round((peak - start_rss) / file_mb, 2)}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _recall(index, n: int) -> float:
    """Share of the exact top 10 (brute force over the same vectors) the index finds, 1,000 queries."""
    queries = next(_chunks(1000, seed=1))[1]
    truth = index.search(queries, 10, exact=True).keys
    found = index.search(queries, 10).keys
    return round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dtypes", default="f32")
    parser.add_argument("--refresh", metavar="LIBRARY", help="instead: rewrite a copy of this library's vector file")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.refresh:
        print(json.dumps(refresh(args.refresh)), flush=True)
        return
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1])), flush=True)
        return
    for n in (int(s) for s in args.sizes.split(",")):
        for dtype in args.dtypes.split(","):
            subprocess.run([sys.executable, __file__, "--one", str(n), dtype], check=True)


if __name__ == "__main__":
    main()
