"""Re-index with nothing changed against the bare walk, and adding 100 pictures, at 10k, 100k and 1M.

Issue 13's targets: a no-change ``imgret index`` costs a directory walk and stat calls (<= 1.5 s at
100k, <= 15 s at 1M, <= 1.3x the walk measured beside it) without reading the vector file; adding
100 pictures costs <= 1.3x the no-change run plus their embedding.

The libraries are copies, never the cached ones (``--cache``, default /work/bench-cache/scale, made
by ``benchmarks/scale.py``): under ``--work`` each size gets a hard-linked copy of its picture folder
(``cp -al``: same inodes, so the same sizes and mtimes, and no picture data copied) and a copy of its
library moved onto it with ``imgret relocate``. 10k and 100k are real ``imgret index`` libraries.
1M is a shortcut: the 100k picture folder hard-linked once (``c0``) and copied nine times with its
mtimes (``cp -a``: ``c1`` .. ``c9``, distinct files, since a walk counts a hard link once; 1M files
to walk and stat, ~4 GB), and the 100k catalogue's rows copied ten times in SQL, one per copy (same
sizes, mtimes and hashes). Its vector file is the 100k one: a 1M
HNSW build takes ~640 s on 2 cores, and neither a no-change run nor adding 100 pictures (they stay
pending) reads beyond the file's first and last MiB (``tests/reliability/test_storage.py`` proves it
with a counting stand-in), so what is timed is the same. Do not query that library: 900k of its rows
name vectors its file does not hold.

Side by side, ``--runs`` times each, interleaved (the median is printed):
- bare walk (``os.scandir`` recursive + ``os.stat`` per file) as a new process: wall, and in-process;
- ``imgret index`` with nothing changed as a new process: wall;
- the same run through the API in one process: ``Library.index`` seconds (what the CLI prints) and,
  right after in the same process, the bare walk again (the in-run ratio); CPU seconds of the
  process and of its ended children (a big tree's walk helper, ``imgret.runtime.scan_split``);
- once: adding 100 new pictures (``imgret index`` wall) against the no-change wall plus embedding the
  100 (loading the bundled encoder, decoding and embedding them in one process).

    python benchmarks/reindex.py                    # 10k,100k: ~2 min on 2 idle cores
    python benchmarks/reindex.py --sizes 1M --runs 1  # 1M: ~10 min on 2 loaded cores (copies, 1M walks)
    python benchmarks/reindex.py --compare /work/main/.venv/bin/python  # A/B: another checkout alternating
    python benchmarks/reindex.py --serial  # A/B: this checkout's walk in one process (--workers 1) alternating

The pictures are hard links into the cache (``cp -al``), so every file has two links; the walk does
not look at link counts (a second name of a file inside the walked tree is what it skips), so it
does not change what is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from scale import WALK, compiled_as_installed, write_pictures  # noqa: E402 - the same JPEGs and bare walk as scale.py

PY = sys.executable
BARE = WALK + "t = time.perf_counter(); walk(sys.argv[1]); print(time.perf_counter() - t)"
IN_RUN = WALK + """
import resource
from imgret.runtime.library import Library
def cpu():  # this process and its ended children (the walk helper): user + system
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
workers = None if sys.argv[3] == "default" else int(sys.argv[3])
with Library.open_writable(sys.argv[2]) as lib:
    c, s = cpu(), time.process_time()
    r = lib.index(sys.argv[1], workers=workers)
    c, s = cpu() - c, time.process_time() - s
    assert r.added == r.updated == r.removed == 0, r
c2 = cpu(); t = time.perf_counter(); walk(sys.argv[1])
w, c2 = time.perf_counter() - t, cpu() - c2
print(r.seconds, w, c, c2, s)
"""
EMBED = """
import sys, time
t = time.perf_counter()
from imgret.runtime.encoder import Encoder
Encoder.default().embed(sys.argv[1:])
print(time.perf_counter() - t)
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


def run(*args, env: dict | None = None) -> tuple[float, str, str, float]:
    """A new process: (wall seconds, stdout, stderr, CPU seconds user + system, its children's too,
    which a loaded machine inflates far less than the wall); a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # From "/": a Python started in a checkout would import that checkout's imgret, whichever it is.
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd="/",
                          env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, proc.stdout, proc.stderr, cpu


def imgret(*args, py: str = PY, env: dict | None = None) -> tuple[float, str, float]:
    """``imgret ARGS`` as a new process: (wall seconds, first line of stderr, CPU seconds)."""
    wall, _, err, cpu = run(py, "-m", "imgret", *args, env=env)
    return wall, err.strip().splitlines()[0], cpu


# -- data ---------------------------------------------------------------------------------------------
def prepare(cache: Path, work: Path, size: str) -> tuple[Path, Path, int]:
    """(pictures, library, count): hard-linked pictures and a relocated library copy under ``work``."""
    pics, lib = work / f"p{size}", work / f"lib{size}"
    if size == "1M":
        return million(cache, work), work / "lib1M", 1_000_000
    count = {"10k": 10_000, "100k": 100_000}[size]
    log(f"{size}: hard-linking the pictures, copying the library")
    run("cp", "-al", cache / f"p{size}", pics)
    run("cp", "-r", cache / f"lib{size}", lib)
    imgret("relocate", cache / f"p{size}", pics, "--library", lib)
    return pics, lib, count


def million(cache: Path, work: Path) -> Path:
    """The 1M shortcut (see the module docstring); returns the picture folder."""
    pics, lib = work / "p1M", work / "lib1M"
    pics.mkdir()
    run("cp", "-al", cache / "p100k", pics / "c0")
    for c in range(1, 10):  # real copies (distinct inodes: hard links would be one file seen ten times)
        log(f"1M: copying the 100k pictures, copy {c} (mtimes kept)")
        run("cp", "-a", cache / "p100k", pics / f"c{c}")
    run("cp", "-r", cache / "lib100k", lib)
    db = sqlite3.connect(lib / "catalogue.sqlite")
    with db:
        db.execute("UPDATE roots SET path = ?", (os.fsencode(pics),))
        db.execute("UPDATE files SET path = CAST('c0/' || CAST(path AS TEXT) AS BLOB)")
        for c in range(1, 10):
            db.execute("INSERT INTO files (root, path, size, mtime_ns, sha256, status, reason) "
                       f"SELECT root, CAST('c{c}/' || substr(CAST(path AS TEXT), 4) AS BLOB), size, mtime_ns, "
                       "sha256, status, reason FROM files WHERE substr(CAST(path AS TEXT), 1, 3) = 'c0/'")
    db.close()
    return pics


# -- measurements -------------------------------------------------------------------------------------
def no_change(size: str, pics: Path, lib: Path, count: int, runs: int, compare: str | None = None,
              serial: bool = False) -> tuple[float, float]:
    """Interleaved runs; emits the medians and returns the no-change process's wall and CPU seconds.
    With ``compare`` (another checkout's Python, its imgret installed), each run is followed by the
    same measurements with it, on the same copies, and its medians are emitted too. With ``serial``,
    each run is also made by this checkout with ``--workers 1`` (the walk in one process) and with
    ``IMGRET_WALK_HELPER=on`` (in two, whatever the load: "two")."""
    arms = [(PY, "default")] + ([(PY, "1"), (PY, "two")] if serial else []) + ([(compare, "default")] if compare else [])
    rows: dict[tuple[str, str], list] = {arm: [] for arm in arms}
    for _ in range(runs):
        for (py, workers), got in rows.items():
            got.append(_one_no_change(py, pics, lib, count, workers))
    for (py, workers), got in rows.items():
        med = _emit_no_change(size, runs, got, None if py == PY else py, workers)
        if (py, workers) == (PY, "default"):
            mine = med
    return mine[2], mine[9]


def _one_no_change(py: str, pics: Path, lib: Path, count: int, arm: str = "default") -> tuple:
    walk_wall, out, _, walk_cpu = run(py, "-c", BARE, pics)
    flags = ("--workers", arm) if arm.isdigit() else ()
    env = {"IMGRET_WALK_HELPER": "on"} if arm == "two" else None
    index_wall, summary, index_cpu = imgret("index", pics, "--library", lib, "--no-progress", *flags, py=py, env=env)
    assert f"{count} unchanged" in summary and " 0 added, 0 updated, 0 removed" in summary, summary
    _, out2, _, _ = run(py, "-c", IN_RUN, pics, lib, arm if arm.isdigit() else "default", env=env)
    return (walk_wall, float(out), index_wall, *map(float, out2.split()), walk_cpu, index_cpu, summary)


def _emit_no_change(size: str, runs: int, rows: list[tuple], compared: str | None, arm: str) -> list[float]:
    summary = rows[-1][-1]
    med = [statistics.median(col) for col in zip(*(r[:-1] for r in rows))]
    emit({"what": "no-change re-index", "size": size, "runs": runs, **({"python": compared} if compared else {}),
          **({} if arm == "default" else {"arm": {"two": "IMGRET_WALK_HELPER=on"}.get(arm, f"--workers {arm}")}),
          "bare_walk_process_s": round(med[0], 3), "bare_walk_in_process_s": round(med[1], 3),
          "index_process_s": round(med[2], 3), "ratio_process": round(med[2] / med[0], 2),
          "index_in_run_s": round(med[3], 3), "walk_beside_s": round(med[4], 3),
          "ratio_in_run": round(med[3] / med[4], 2),
          "cpu_index_in_run_s": round(med[5], 3), "cpu_walk_beside_s": round(med[6], 3),
          "cpu_ratio_in_run": round(med[5] / med[6], 2), "cpu_index_in_run_this_process_s": round(med[7], 3),
          "cpu_bare_walk_process_s": round(med[8], 3), "cpu_index_process_s": round(med[9], 3),
          "cpu_ratio_process": round(med[9] / med[8], 2), "summary": summary})
    return med


def add_100(size: str, pics: Path, lib: Path, no_change: tuple[float, float]) -> None:
    new = pics / "zz-added"
    write_pictures(new, 100, start=5_000_000)
    (new / ".done").unlink()
    _, out, _, embed_cpu = run(PY, "-c", EMBED, *sorted(str(p) for p in new.rglob("*.jpg")))
    embed = float(out)
    wall, summary, cpu = imgret("index", pics, "--library", lib, "--no-progress")
    assert " 100 added" in summary, summary
    emit({"what": "add 100", "size": size, "index_process_s": round(wall, 3),
          "no_change_process_s": round(no_change[0], 3), "embed_100_s": round(embed, 3),
          "ratio": round(wall / (no_change[0] + embed), 2), "cpu_index_process_s": round(cpu, 3),
          "cpu_no_change_process_s": round(no_change[1], 3), "cpu_embed_100_process_s": round(embed_cpu, 3),
          "cpu_ratio": round(cpu / (no_change[1] + embed_cpu), 2), "summary": summary})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/bench-cache/scale"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgret-reindex-bench"))
    ap.add_argument("--sizes", default="10k,100k")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the copies under --work")
    ap.add_argument("--compare", metavar="PYTHON", help="another checkout's Python (its imgret installed, e.g. "
                    "/work/main/.venv/bin/python): its no-change runs alternate with this one's on the same copies")
    ap.add_argument("--serial", action="store_true", help="also this checkout with --workers 1 (the walk in one "
                    "process), alternating with the default (two processes on a big tree)")
    args = ap.parse_args()
    compiled_as_installed()
    emit({"what": "machine", "cpus": os.cpu_count(), "load": [round(x, 1) for x in os.getloadavg()],
          "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    try:
        for size in args.sizes.split(","):
            pics, lib, count = prepare(args.cache, args.work, size)
            imgret("index", pics, "--library", lib, "--no-progress")  # warm the page cache (and sign)
            if args.compare:  # a no-change run of the other checkout changes nothing: the signatures stay
                imgret("index", pics, "--library", lib, "--no-progress", py=args.compare)
            add_100(size, pics, lib, no_change(size, pics, lib, count, args.runs, args.compare, args.serial))
            if not args.keep:
                shutil.rmtree(pics), shutil.rmtree(lib)
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    emit({"what": "machine after", "load": [round(x, 1) for x in os.getloadavg()]})


if __name__ == "__main__":
    main()
