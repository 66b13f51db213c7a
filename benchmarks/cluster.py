"""What `imgret index --cluster` costs and where its limit is.

    python benchmarks/cluster.py [--count 120] [--workers 2] [--writer 20000] [--repeat 2]

Measures, in one run on the same cached 12 MP JPEGs (``benchmarks/pictures.py``):

1. plain ``Library.index`` with ``--workers`` decode processes, and the same through
   ``--cluster local:N`` (N = ``--workers`` processes of one thread), best of ``--repeat`` each; the
   cluster's start-up is timed apart and not counted (a real cluster is started once, for many runs);
2. the writer's capacity alone: ``Indexer.index_folder`` fed by a source that returns ready vectors
   instantly (no decoding, no encoding), over ``--writer`` stub files: the rate at which it takes
   vectors and commits them to the catalogue, and apart from it the end of the run (the vector file
   build, once per run; see benchmarks/scale.py for its cost at 1M);
3. from (1) the per-worker rate and from (2) the cluster size at which the writer becomes the limit,
   and the time for 10 million pictures on 1, 10 and 100 workers (method printed beside the numbers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pictures  # noqa: E402
from throughput import linked_folder  # noqa: E402


def plain_index(folder: str, workers: int) -> float:
    from imgret.runtime.batching import encoder_threads
    from imgret.runtime.library import Library

    with tempfile.TemporaryDirectory(prefix="imgret-cl-") as lib_dir:
        with Library.open_writable(lib_dir, threads=encoder_threads(workers)) as lib:
            start = time.perf_counter()
            report = lib.index(folder, workers=workers)
            took = time.perf_counter() - start
    assert not report.skipped_count
    return took


def cluster_index(folder: str, remote) -> float:
    from imgret.runtime.library import Library

    with tempfile.TemporaryDirectory(prefix="imgret-cl-") as lib_dir:
        with Library.open_writable(lib_dir) as lib:
            source = remote.for_encoder(lib.encoder)
            start = time.perf_counter()
            report = lib.index(folder, source=source)
            took = time.perf_counter() - start
    assert not report.skipped_count
    return took


def writer_capacity(count: int) -> tuple[float, float]:
    """The writer alone, vectors arriving for free: (vectors/s committed to the catalogue, seconds of the
    run's end: removals, last commit and the vector file build)."""
    from imgret.runtime.library import Library
    from imgret.runtime.prepare import Prepared

    rng = np.random.default_rng(0)
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="imgret-writer-") as root:
        pics = Path(root) / "pics"
        pics.mkdir()
        for i in range(count):
            (pics / f"p{i:07d}.jpg").write_bytes(i.to_bytes(4, "little"))
        with Library.open_writable(Path(root) / "lib") as lib:
            dim = lib.encoder.dim
            vectors = rng.normal(size=(count, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

            def ready(paths, size):  # a cluster that answers instantly
                marks["first"] = time.perf_counter()
                for n, path in enumerate(paths):
                    yield Prepared(path, f"{n:064x}", None, vector=vectors[n])
                marks["last"] = time.perf_counter()  # reached once the writer has taken every vector

            report = lib.index(pics, source=ready)
            end = time.perf_counter()
    assert report.added == count, report
    return count / (marks["last"] - marks["first"]), end - marks["last"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--writer", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from imgret.runtime.cluster import open_cluster

    folder = linked_folder(pictures.pictures("jpeg12mp", args.count))
    try:
        plain_index(folder, args.workers)  # page cache and imports warm
        start = time.perf_counter()
        with open_cluster(f"local:{args.workers}") as remote:
            started = time.perf_counter() - start
            cluster_index(folder, remote)  # the workers load the model once
            plain_s, cluster_s = [], []
            for _ in range(args.repeat):
                plain_s.append(plain_index(folder, args.workers))
                cluster_s.append(cluster_index(folder, remote))
    finally:
        shutil.rmtree(folder)
    plain_fps, cluster_fps = args.count / min(plain_s), args.count / min(cluster_s)
    writer, finish = writer_capacity(args.writer)
    per_worker = cluster_fps / args.workers
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"{args.count} 12 MP JPEGs, {args.workers} processes")
    print(f"plain imgret index --workers {args.workers}: {plain_fps:.1f} files/s (runs {_runs(plain_s)})")
    print(f"imgret index --cluster local:{args.workers}: {cluster_fps:.1f} files/s (runs {_runs(cluster_s)}); "
          f"cluster start-up {started:.1f} s, not counted")
    print(f"ratio cluster/plain: **{cluster_fps / plain_fps:.2f}x**")
    print(f"writer alone ({args.writer:,} files, vectors ready): {writer:,.0f} vectors/s committed; then "
          f"{finish:.1f} s for the end of the run (removals, last commit, vector file build)")
    print(f"per worker process: {per_worker:.1f} files/s -> the writer is the limit from about "
          f"{writer / per_worker:,.0f} worker processes")
    for n in (1, 10, 100):
        rate = min(n * per_worker, writer)
        print(f"10M pictures on {n} worker processes: min({n} x {per_worker:.1f}, {writer:,.0f}) = {rate:,.0f} "
              f"files/s -> {1e7 / rate / 3600:.1f} h")


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f} s" for s in seconds)


if __name__ == "__main__":
    main()
