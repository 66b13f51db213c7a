"""Indexing throughput against the decode-only limit, and peak memory of an index run's process tree.

    python benchmarks/throughput.py [--workers N] [--count-12mp 120] [--count-png 80] [--count-small 600]
                                    [--memory-sizes 10000,100000] [--threads T]

Pictures come from ``benchmarks/pictures.py`` (random crops of real photographs, cached). For each
kind (12 MP JPEG, 4K PNG, small 0.48 MP JPEG), in the same run and with the same number of
processes, it measures:

- the **decode-only limit**: :func:`imgret.runtime.batching.prepared_stream` over the files with
  ``--workers`` processes, every picture read, hashed, decoded and resized, and nothing else;
- **indexing**: ``Library.index`` of the same files into a new library with the bundled encoder and
  the same ``--workers`` (scan, decode, embed, commit, vector file);

alternately, ``--repeat`` times each, and prints the median rate of each, the median of the ratios of
adjacent pairs (a pair shares the machine's load of the moment) and the CPU each took per picture, in
this process (scan, embed, commit, vector file) and in the decode workers: CPU per picture depends
little on the load of a shared machine, while rates do. Then, for each of ``--memory-sizes``, it runs the real
``imgret index`` CLI over that many distinct tiny JPEGs and samples the summed RSS of the whole process
tree (the index process, its decode workers and multiprocessing's resource tracker) every 50 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pictures  # noqa: E402


class Run:
    """Wall seconds and CPU seconds of one measured call: in this process, and in its worker
    processes (the pool's workers are waited for, so the kernel has added their CPU to ours)."""

    def __init__(self, work) -> None:
        before, start = os.times(), time.perf_counter()
        work()
        after = os.times()
        self.wall = time.perf_counter() - start
        self.main_cpu = after.user - before.user + after.system - before.system
        self.worker_cpu = (after.children_user - before.children_user
                           + after.children_system - before.children_system)


def decode_only(paths: list[str], size: int, workers: int) -> Run:
    """Read, hash, decode and resize every file with ``workers`` processes, and nothing else."""
    from imgret.runtime.batching import prepared_stream

    def work() -> None:
        for _ in prepared_stream(paths, size, workers):
            pass

    return Run(work)


def index_once(folder: str, workers: int, threads: int | None, model: str | None = None) -> Run:
    """``Library.index`` of ``folder`` into a new library (with ``model``, else the bundled default),
    with the encoder threads ``imgret index`` uses (:func:`~imgret.runtime.batching.encoder_threads`)
    unless ``threads``."""
    from imgret.runtime.batching import encoder_threads
    from imgret.runtime.library import Library

    threads = threads or encoder_threads(workers)
    with tempfile.TemporaryDirectory(prefix="imgret-tp-") as lib_dir:
        with Library.open_writable(lib_dir, model=model, threads=threads) as lib:
            reports = []
            run = Run(lambda: reports.append(lib.index(folder, workers=workers)))
        report = reports[0]
        if report.skipped_count or not report.added:
            raise SystemExit(f"index skipped {report.skipped_count} files: {sorted(report.skipped)}")
    return run


def linked_folder(paths: list[str]) -> str:
    """A temporary folder of hard links to exactly ``paths`` (the cache may hold more files)."""
    folder = tempfile.mkdtemp(prefix="imgret-tp-pics-", dir=pictures.CACHE)  # same file system
    for p in paths:
        os.link(p, os.path.join(folder, os.path.basename(p)))
    return folder


def compare(kind: str, count: int, workers: int, threads: int | None, repeat: int,  # noqa: PLR0913
            model: str | None = None) -> dict:
    """Decode-only and indexing of ``count`` pictures of ``kind``, alternately, ``repeat`` times each
    (indexing with ``model``, else the bundled default; decoding to its input size either way)."""
    from imgret.runtime.encoder import Encoder

    paths = pictures.pictures(kind, count)
    size = (Encoder.load(model) if model else Encoder.default()).size
    folder = linked_folder(paths)
    try:
        decode_only(paths[: min(len(paths), 40)], size, workers)  # page cache and imports warm
        pairs = [(decode_only(paths, size, workers), index_once(folder, workers, threads, model))
                 for _ in range(repeat)]
    finally:
        shutil.rmtree(folder)
    dec, idx = [d for d, _ in pairs], [i for _, i in pairs]

    def ms(runs, part):  # median CPU milliseconds per picture
        return 1000 * statistics.median(getattr(r, part) for r in runs) / count

    return {"kind": kind, "files": count,
            "decode_fps": count / statistics.median(r.wall for r in dec),
            "index_fps": count / statistics.median(r.wall for r in idx),
            "ratio": statistics.median(d.wall / i.wall for d, i in pairs),
            "pair_ratios": [d.wall / i.wall for d, i in pairs],
            "decode_cpu_ms": (ms(dec, "main_cpu"), ms(dec, "worker_cpu")),
            "index_cpu_ms": (ms(idx, "main_cpu"), ms(idx, "worker_cpu"))}


def tree_rss(root_pid: int) -> int:
    """Summed resident memory (bytes) of ``root_pid`` and all its descendants, from /proc."""
    return tree_rss_and_workers(root_pid)[0]


def tree_rss_and_workers(root_pid: int) -> tuple[int, bool]:
    """Summed resident memory (bytes) of ``root_pid`` and all its descendants, and whether a decode
    worker (a spawned child other than multiprocessing's resource tracker) is among them."""
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
    total, todo, workers = 0, [root_pid], False
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
        if pid != root_pid and not workers:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            workers = b"spawn_main" in cmdline and b"resource_tracker" not in cmdline
    return total, workers


def peak_memory(count: int, workers: int, folder: str | None = None) -> dict:
    """Run ``imgret index`` over ``count`` tiny JPEGs (or every picture of an existing ``folder``, which
    is left as it is) into a new library; peak summed RSS of its process tree."""
    own_folder = folder is None
    if own_folder:
        folder = linked_folder(pictures.pictures("tiny", count))
    lib_dir = tempfile.mkdtemp(prefix="imgret-tp-lib-")
    cmd = [sys.executable, "-m", "imgret", "index", folder, "--library", lib_dir, "--workers", str(workers),
           "--no-progress"]
    peak, peak_after_workers, workers_seen = 0, 0, False
    try:
        start = time.perf_counter()
        run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def sample() -> None:  # the peak, and the peak once the decode workers are gone (the build)
            nonlocal peak, peak_after_workers, workers_seen
            while not stop.wait(0.05):
                rss, workers = tree_rss_and_workers(run.pid)
                peak = max(peak, rss)
                workers_seen = workers_seen or workers
                if workers_seen and not workers:
                    peak_after_workers = max(peak_after_workers, rss)

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
    return {"pictures": count, "peak_mb": peak / 1e6, "build_peak_mb": peak_after_workers / 1e6,
            "seconds": took, "summary": err.strip().splitlines()[0]}


def main() -> None:
    from imgret.runtime.batching import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=None, help="encoder intra-op threads (default: imgret's)")
    parser.add_argument("--count-12mp", type=int, default=120)
    parser.add_argument("--count-png", type=int, default=80)  # >= 64: 2 processes (fewer decode in-process)
    parser.add_argument("--count-small", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-sizes", default="10000", help="comma-separated picture counts; empty: skip")
    parser.add_argument("--memory-folder", default=None,
                        help="also index this existing folder of pictures for the memory table")
    parser.add_argument("--only", default="", help="comma-separated kinds to run (jpeg12mp,png4k,small,memory)")
    parser.add_argument("--model", default=None, help="index with this .onnx encoder (default: the bundled one)")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"--workers {args.workers}, encoder threads {args.threads or 'as imgret index'}")
    print("| pictures | files | decode-only files/s | index files/s | ratio (pairs) | "
          "CPU ms/picture decode-only: main + workers | index: main + workers |")
    print("|---|---:|---:|---:|---|---|---|")
    for kind, count in (("jpeg12mp", args.count_12mp), ("png4k", args.count_png), ("small", args.count_small)):
        if count and (not only or kind in only):
            r = compare(kind, count, args.workers, args.threads, args.repeat, args.model)
            pairs = ", ".join(f"{x:.2f}" for x in r["pair_ratios"])
            (dm, dw), (im, iw) = r["decode_cpu_ms"], r["index_cpu_ms"]
            print(f"| {kind} | {count} | {r['decode_fps']:.1f} | {r['index_fps']:.1f} | **{r['ratio']:.2f}x** "
                  f"({pairs}) | {dm:.2f} + {dw:.2f} = {dm + dw:.2f} | {im:.2f} + {iw:.2f} = {im + iw:.2f} |",
                  flush=True)
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    if (sizes or args.memory_folder) and (not only or "memory" in only):
        print("\n| library size | peak RSS, whole process tree | after the decode workers exit (vector file build) "
              "| index time |")
        print("|---:|---:|---:|---:|")
        for n in sizes:
            m = peak_memory(n, args.workers)
            print(f"| {n:,} | {m['peak_mb']:.0f} MB | {m['build_peak_mb']:.0f} MB | {m['seconds']:.1f} s |", flush=True)
        if args.memory_folder:
            m = peak_memory(0, args.workers, args.memory_folder)
            print(f"| {args.memory_folder} | {m['peak_mb']:.0f} MB | {m['build_peak_mb']:.0f} MB | "
                  f"{m['seconds']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
