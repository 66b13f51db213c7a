"""Runtime speed: how fast `imgret index` and `imgret query` are on this machine, and what an
embedding costs beside decoding the JPEG it comes from.

Uses the near-duplicate set's database pictures (1,276 JPEGs up to 1024 px; build it first with
``python benchmarks/neardup.py``) and the bundled default encoder unless ``--model`` says otherwise.

    python benchmarks/runtime_speed.py [--model NAME|FILE.onnx] [--threads 1]

Reports: decode+preprocess ms/picture (imgret's reader, JPEG draft mode), encoder ms/picture (batch
of 32, onnxruntime CPU), a cold first `index` (files/s, spawned decode workers), a warm re-`index`
(nothing changed), and query latency (p50/p95 over 200 queries, stored vector vs a new picture).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default=str(ROOT / "bench-data" / "neardup"))
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()

    from imgret.runtime import imageio
    from imgret.runtime.encoder import Encoder
    from imgret.runtime.library import Library
    from imgret.runtime.scan import image_files

    files = image_files(os.path.join(args.data, "distractors")) + image_files(os.path.join(args.data, "originals"))
    queries = image_files(os.path.join(args.data, "queries"))[:200]
    if not files:
        sys.exit(f"no pictures under {args.data}: run benchmarks/neardup.py first")
    enc = Encoder.load(args.model) if args.model else Encoder.default()
    if args.threads:
        enc = Encoder(enc.path, threads=args.threads, name=enc.name)

    sample = files[:300]
    t = time.perf_counter()
    pixels = [imageio.load(p, enc.size) for p in sample]
    decode_ms = (time.perf_counter() - t) / len(sample) * 1e3
    batch = np.stack(pixels[:32])
    enc.embed_arrays(batch)
    t = time.perf_counter()
    for _ in range(5):
        enc.embed_arrays(batch)
    embed_ms = (time.perf_counter() - t) / (5 * len(batch)) * 1e3

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in files:
            shutil.copyfile(p, folder / os.path.basename(p))
        lib_dir = Path(tmp) / "lib"
        with Library.open_writable(lib_dir, model=enc.path) as lib:
            t = time.perf_counter()
            report = lib.index(folder)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            lib.index(folder)
            warm = time.perf_counter() - t
        with Library.open(lib_dir) as lib:
            lib.query([str(folder / os.path.basename(files[0]))], 10)
            stored, fresh = [], []
            for p in files[:200]:
                t = time.perf_counter()
                lib.query([str(folder / os.path.basename(p))], 10)
                stored.append((time.perf_counter() - t) * 1e3)
            for q in queries:
                t = time.perf_counter()
                lib.query([q], 10)
                fresh.append((time.perf_counter() - t) * 1e3)
        cli = []
        for q in queries[:5]:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "imgret", "query", q, "-N", "10", "--library", str(lib_dir)],
                           check=True, capture_output=True)
            cli.append(time.perf_counter() - t)

    def pct(xs, q):
        return float(np.percentile(xs, q))

    print(f"model {enc.name} ({enc.info.model_id}), {enc.size}px, {enc.dim}-d, file {os.path.getsize(enc.path) / 1e6:.2f} MB")
    print(f"decode+preprocess: {decode_ms:.2f} ms/picture   encoder: {embed_ms:.2f} ms/picture (batch 32)")
    print(f"first index: {report.added} pictures in {cold:.1f} s = {report.added / cold:.0f} files/s; "
          f"unchanged re-index: {warm:.2f} s")
    print(f"query, stored vector: p50 {statistics.median(stored):.1f} ms, p95 {pct(stored, 95):.1f} ms; "
          f"new picture: p50 {statistics.median(fresh):.1f} ms, p95 {pct(fresh, 95):.1f} ms (in-process, index loaded)")
    print(f"whole `imgret query` command (new process, loads model and index): {statistics.median(cli):.2f} s")


if __name__ == "__main__":
    main()
