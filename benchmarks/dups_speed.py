"""How long ``find_duplicates`` (the grouping behind ``imgret dups``) takes, and how much memory, on
synthetic libraries of 25,000 to 100,000 vectors; 1,000,000 extrapolated.

The vectors (seeded, 128-d, L2-normalised like the bundled encoder's):

* **clusters** — ``N / 50`` random centres; every picture is a centre plus Gaussian noise, scaled so a
  picture's nearest non-copy neighbour sits at a cosine distance of about 0.1–0.3, as in a real photo
  library (not the ~1.0 of independent random vectors, which would make the search too easy);
* **planted near copies** — 4% of the pictures get 1–3 copies at cosine distances of 0.001–0.05
  (what crops, resizes and recompression give with ``photo-conv-v1``);
* **identical files** — another 1% are byte-identical copies (same hash, same vector).

Each size runs in a fresh interpreter, so the peak resident memory (``ru_maxrss``) is that run's own:
Python, numpy and usearch loaded, the vectors, the search and the grouping. The time covers
``find_duplicates`` alone (vectors already in memory, as a library holds them in its catalogue);
both wall time and CPU time (all threads) are printed, because on a shared machine the wall time
says more about the neighbours than about imgret. 1,000,000 is extrapolated from the CPU time with a
power law ``t = a * N^b`` fitted by least squares to the measured (log N, log t) points, and memory
with a straight line through the measured peaks.

Usage::

    python benchmarks/dups_speed.py                  # 25k, 50k, 100k
    python benchmarks/dups_speed.py --sizes 10000    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imgret.runtime.dups import find_duplicates  # noqa: E402

DIM = 128
THRESHOLD = 0.10


def synthetic(n: int, seed: int = 0):
    """Keys, vectors, hashes and the planted near-copy families (lists of row indices) for ``n`` rows."""
    rng = np.random.default_rng(seed)
    n_planted, n_identical = int(n * 0.04), int(n * 0.01)
    n_base = n - n_planted - n_identical
    centres = rng.normal(size=(max(1, n_base // 50), DIM)).astype(np.float32)
    base = centres[rng.integers(0, len(centres), n_base)] + rng.normal(scale=0.45, size=(n_base, DIM)).astype(np.float32)
    rows = [_unit(base)]
    families, row = [], n_base
    owners = rng.choice(n_base, size=n_planted, replace=False)
    done = 0
    while done < n_planted:
        owner, count = int(owners[done]), int(min(rng.integers(1, 4), n_planted - done))
        # cosine distance d between unit rows needs noise of norm sqrt(2 d) in the orthogonal complement
        d = rng.uniform(0.001, 0.05, size=count)
        noise = rng.normal(size=(count, DIM)).astype(np.float32)
        noise -= (noise @ rows[0][owner])[:, None] * rows[0][owner]
        noise = _unit(noise) * np.sqrt(2 * d)[:, None].astype(np.float32)
        rows.append(_unit(rows[0][owner] + noise))
        families.append([owner, *range(row, row + count)])
        row, done = row + count, done + count
    twins = rng.choice(n_base, size=n_identical, replace=False)
    rows.append(rows[0][twins])
    vectors = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
    hashes = [f"h{i}" for i in range(n_base + n_planted)] + [f"h{t}" for t in twins]
    return np.arange(n, dtype=np.uint64), vectors, hashes, families


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def one(n: int) -> dict:
    """Time and peak memory of one grouping of ``n`` synthetic vectors, with how many planted families
    came back whole."""
    keys, vectors, hashes, families = synthetic(n)
    load = os.getloadavg()[0]
    start, cpu0 = time.perf_counter(), _cpu()
    groups = find_duplicates(keys, vectors, hashes, threshold=THRESHOLD)
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu0
    found = {frozenset(m.key for m in g.members) for g in groups}
    whole = sum(any(set(f) <= g for g in found) for f in families)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"n": n, "seconds": seconds, "cpu_seconds": cpu, "load_before": load, "peak_rss_mb": peak_mb, "groups": len(groups),
            "planted_families": len(families), "families_found_whole": whole}


def _cpu() -> float:
    """CPU seconds of this process, all threads, user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="25000,50000,100000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout)
        results.append(r)
        print(f"{r['n']:>9,d} vectors: {r['seconds']:6.1f} s wall, {r['cpu_seconds']:6.1f} s CPU "
              f"(load before {r['load_before']:.1f}), peak RSS {r['peak_rss_mb']:6.0f} MB, "
              f"{r['groups']:,d} groups, planted families found whole {r['families_found_whole']:,d}"
              f"/{r['planted_families']:,d}", flush=True)
    if len(results) >= 2:
        n = np.array([r["n"] for r in results], dtype=float)
        b, log_a = np.polyfit(np.log(n), np.log([r["cpu_seconds"] for r in results]), 1)
        slope, icpt = np.polyfit(n, [r["peak_rss_mb"] for r in results], 1)
        print(f"1,000,000 extrapolated: {np.exp(log_a) * 1e6 ** b:.0f} CPU s (t ~ N^{b:.2f}), "
              f"peak RSS {icpt + slope * 1e6:.0f} MB ({slope * 1e3:.2f} MB per 1,000 vectors)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
