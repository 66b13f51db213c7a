"""Indexing throughput against the decode-only limit, and peak memory of an index run's process tree.

    python benchmarks/throughput.py [--workers N] [--count-12mp 120] [--count-png 40] [--count-small 600]
                                    [--memory-sizes 10000,100000] [--threads T]

Pictures come from ``benchmarks/pictures.py`` (random crops of real photographs, cached). For each
kind (12 MP JPEG, 4K PNG, small 0.48 MP JPEG), in the same run and with the same number of
processes, it measures:

- the **decode-only limit**: :func:`imgret.runtime.batching.prepared_stream` over the files with
  ``--workers`` processes, every picture read, hashed, decoded and resized, and nothing else;
- **indexing**: ``Library.index`` of the same files into a new library with the bundled encoder and
  the same ``--workers`` (scan, decode, embed, commit, vector file);

alternately, ``--repeat`` times each, and prints the best of each and their ratio (the machine is
shared: the best run is the one least disturbed). Then, for each of ``--memory-sizes``, it runs the real
``imgret index`` CLI over that many distinct tiny JPEGs and samples the summed RSS of the whole process
tree (the index process, its decode workers and multiprocessing's resource tracker) every 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pictures  # noqa: E402


def decode_only(paths: list[str], size: int, workers: int) -> float:
    """Seconds to read, hash, decode and resize every file with ``workers`` processes."""
    from imgret.runtime.batching import prepared_stream

    start = time.perf_counter()
    for _ in prepared_stream(paths, size, workers):
        pass
    return time.perf_counter() - start


def index_once(folder: str, workers: int, threads: int | None) -> float:
    """Seconds for ``Library.index`` of ``folder`` into a new library, with the encoder threads
    ``imgret index`` uses (:func:`~imgret.runtime.batching.encoder_threads`) unless ``threads``."""
    from imgret.runtime.batching import encoder_threads
    from imgret.runtime.library import Library

    threads = threads or encoder_threads(workers)
    with tempfile.TemporaryDirectory(prefix="imgret-tp-") as lib_dir:
        with Library.open_writable(lib_dir, threads=threads) as lib:
            start = time.perf_counter()
            report = lib.index(folder, workers=workers)
            took = time.perf_counter() - start
        if report.skipped_count or not report.added:
            raise SystemExit(f"index skipped {report.skipped_count} files: {sorted(report.skipped)}")
    return took


def linked_folder(paths: list[str]) -> str:
    """A temporary folder of hard links to exactly ``paths`` (the cache may hold more files)."""
    folder = tempfile.mkdtemp(prefix="imgret-tp-pics-", dir=pictures.CACHE)  # same file system
    for p in paths:
        os.link(p, os.path.join(folder, os.path.basename(p)))
    return folder


def compare(kind: str, count: int, workers: int, threads: int | None, repeat: int) -> dict:
    """Best-of-``repeat`` decode-only and indexing rates for ``count`` pictures of ``kind``."""
    from imgret.runtime.encoder import Encoder

    paths = pictures.pictures(kind, count)
    size = Encoder.default().size
    folder = linked_folder(paths)
    try:
        decode_only(paths[: min(len(paths), 40)], size, workers)  # page cache and imports warm
        decode_s, index_s = [], []
        for _ in range(repeat):
            decode_s.append(decode_only(paths, size, workers))
            index_s.append(index_once(folder, workers, threads))
    finally:
        shutil.rmtree(folder)
    dec, idx = count / min(decode_s), count / min(index_s)
    return {"kind": kind, "files": count, "decode_fps": dec, "index_fps": idx, "ratio": idx / dec,
            "decode_runs": decode_s, "index_runs": index_s}


def tree_rss(root_pid: int) -> int:
    """Summed resident memory (bytes) of ``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, ppid = int(entry), int(fields.get("PPid", "0").strip())
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def peak_memory(count: int, workers: int, folder: str | None = None) -> dict:
    """Run ``imgret index`` over ``count`` tiny JPEGs (or every picture of an existing ``folder``, which
    is left as it is) into a new library; peak summed RSS of its process tree."""
    own_folder = folder is None
    if own_folder:
        folder = linked_folder(pictures.pictures("tiny", count))
    lib_dir = tempfile.mkdtemp(prefix="imgret-tp-lib-")
    cmd = [sys.executable, "-m", "imgret", "index", folder, "--library", lib_dir, "--workers", str(workers),
           "--no-progress"]
    peak = 0
    try:
        start = time.perf_counter()
        run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.05):
                peak = max(peak, tree_rss(run.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = run.communicate()[1]
        stop.set()
        sampler.join()
        took = time.perf_counter() - start
        if run.returncode != 0:
            raise SystemExit(f"imgret index failed: {err}")
    finally:
        if own_folder:
            shutil.rmtree(folder)
        shutil.rmtree(lib_dir)
    return {"pictures": count, "peak_mb": peak / 1e6, "seconds": took, "summary": err.strip().splitlines()[0]}


def main() -> None:
    from imgret.runtime.batching import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=None, help="encoder intra-op threads (default: imgret's)")
    parser.add_argument("--count-12mp", type=int, default=120)
    parser.add_argument("--count-png", type=int, default=40)
    parser.add_argument("--count-small", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-sizes", default="10000", help="comma-separated picture counts; empty: skip")
    parser.add_argument("--memory-folder", default=None,
                        help="also index this existing folder of pictures for the memory table")
    parser.add_argument("--only", default="", help="comma-separated kinds to run (jpeg12mp,png4k,small,memory)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"--workers {args.workers}, encoder threads {args.threads or 'as imgret index'}")
    print("| pictures | files | decode-only files/s | index files/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for kind, count in (("jpeg12mp", args.count_12mp), ("png4k", args.count_png), ("small", args.count_small)):
        if count and (not only or kind in only):
            r = compare(kind, count, args.workers, args.threads, args.repeat)
            print(f"| {kind} | {count} | {r['decode_fps']:.1f} | {r['index_fps']:.1f} | **{r['ratio']:.2f}x** |",
                  flush=True)
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    if (sizes or args.memory_folder) and (not only or "memory" in only):
        print("\n| library size | peak RSS, whole process tree | index time |")
        print("|---:|---:|---:|")
        for n in sizes:
            m = peak_memory(n, args.workers)
            print(f"| {n:,} | {m['peak_mb']:.0f} MB | {m['seconds']:.1f} s |", flush=True)
        if args.memory_folder:
            m = peak_memory(0, args.workers, args.memory_folder)
            print(f"| {args.memory_folder} | {m['peak_mb']:.0f} MB | {m['seconds']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
