"""Speed, memory and disk of a library at 10k, 100k and 1M pictures, measured side by side.

How the libraries are built:
- 10k and 100k: real ``imgret index`` runs (bundled model) over distinct small generated JPEGs, cached
  under ``--cache`` (default /work/bench-cache/scale, outside the repository).
- 1M (the documented shortcut): the 100k folder copied ten times (1M real files to walk and stat); the
  catalogue written directly through :class:`imgret.runtime.catalogue.Catalogue` with each copy's real
  size, mtime and content hash, and vectors taken from the 100k library (copy 0 as embedded, copies 1-9
  with small Gaussian noise, renormalised, so all 1M vectors are distinct and have the real model's
  neighbourhood structure); then the vector file is built by the library's own refresh, in a child
  process whose peak memory is measured.

What it prints (one JSON object per line, then a table): no-change re-index against a bare walk, adding
100 pictures, cold ``imgret query`` as a new process against the bare import of its dependencies (RSS
too; on an upgraded copy of the library, see :func:`library_copy`), the same with the library's files
evicted from the page cache (posix_fadvise DONTNEED: no root needed; Python's own files stay cached), disk per picture, the vector file's build peak memory, the
exact/HNSW crossover and HNSW recall@10 against exact search.

    python benchmarks/scale.py               # everything (first run builds the data: ~30 min on 2 cores)
    python benchmarks/scale.py --sizes 10k   # quicker
    python benchmarks/scale.py --sizes 100k --skip nochange,add,disk,search   # cold query only: ~1 min
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PY = sys.executable
DEPS = "import click, numpy, sqlite3, PIL.Image, onnxruntime, usearch.index"
# What a query of library pictures imported in the cold-query round 2 (no Pillow, no onnxruntime) ...
DEPS_LIBRARY_PICTURE = "import click, numpy, sqlite3, usearch.index"
# ... and since imgret reads the vector file itself for a few searches (no usearch either).
DEPS_OWN_READER = "import click, numpy, sqlite3"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


# -- data ---------------------------------------------------------------------------------------------
def write_pictures(folder: Path, count: int, start: int = 0, per_dir: int = 1000) -> None:
    """``count`` distinct small JPEGs (blocks of colour with noise, 64x48) in folders of ``per_dir``."""
    from PIL import Image

    done = folder / ".done"
    if done.exists():
        return
    for i in range(start, start + count):
        rng = np.random.default_rng(i)
        blocks = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)
        img = np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))
        img = np.clip(img.astype(np.int16) + rng.integers(-12, 13, size=img.shape), 0, 255).astype(np.uint8)
        d = folder / f"d{i // per_dir:04d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"p{i:07d}.jpg", quality=85)
    done.touch()


def imgret(*args, env=None) -> tuple[float, int, str]:
    """Run ``imgret ARGS`` as a new process: (wall seconds, peak RSS in bytes, stderr)."""
    t = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "imgret", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"imgret {args} failed: {err}")
    return wall, usage.ru_maxrss * 1024, err


def python(code: str) -> tuple[float, int]:
    """Run ``python -c CODE`` as a new process: (wall seconds, peak RSS bytes)."""
    t = time.perf_counter()
    proc = subprocess.Popen([PY, "-c", code])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(code)
    return time.perf_counter() - t, usage.ru_maxrss * 1024


def library_built(lib: Path, count: int) -> bool:
    if not (lib / "catalogue.sqlite").exists():
        return False
    from imgret.runtime.library import library_info

    return library_info(lib)["pictures"] == count


def build_real(pics: Path, lib: Path, count: int) -> None:
    if library_built(lib, count):
        return
    shutil.rmtree(lib, ignore_errors=True)
    log(f"indexing {count} pictures into {lib} (real imgret index)")
    wall, rss, err = imgret("index", pics, "--library", lib, "--no-progress")
    emit({"what": "first index", "pictures": count, "seconds": round(wall, 1), "peak_rss_mb": rss >> 20})


def build_million(cache: Path, lib100k: Path, copies: int = 10) -> Path:
    """The 1M shortcut (see the module docstring); returns the library folder."""
    pics, lib = cache / "p1m", cache / "lib1m"
    if library_built(lib, 100_000 * copies):
        return lib
    for c in range(copies):
        if not (pics / f"c{c}").exists():
            log(f"copying the 100k pictures: copy {c}")
            shutil.copytree(cache / "p100k", pics / f"c{c}", ignore=shutil.ignore_patterns(".done"))
    shutil.rmtree(lib, ignore_errors=True)
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; " \
           f"scale._write_million_catalogue({str(lib100k)!r}, {str(pics)!r}, {str(lib)!r}, {copies})"
    wall, rss = python(code)
    emit({"what": "1M catalogue written (shortcut)", "seconds": round(wall, 1), "peak_rss_mb": rss >> 20})
    code = f"from imgret.runtime.library import Library; lib = Library.open_writable({str(lib)!r}); " \
           "print(lib.refresh_index(), file=__import__('sys').stderr); lib.close()"
    wall, rss = python(code)
    size = sum(p.stat().st_size for p in lib.glob("vectors-*.usearch"))
    emit({"what": "vector file build, 1M", "seconds": round(wall, 1), "peak_rss_mb": rss >> 20,
          "file_mb": size >> 20, "peak_over_file": round(rss / size, 2)})
    subprocess.run(["sqlite3" if shutil.which("sqlite3") else PY, *([str(lib / "catalogue.sqlite"), "VACUUM"]
                    if shutil.which("sqlite3") else ["-c", _vacuum(lib)])], check=True)
    return lib


def _vacuum(lib: Path) -> str:
    return f"import sqlite3; db = sqlite3.connect({str(lib / 'catalogue.sqlite')!r}); db.execute('VACUUM'); db.close()"


def _write_million_catalogue(lib100k: str, pics: str, lib: str, copies: int) -> None:
    """Child process: rows and pending vectors for every copy, through the Catalogue API."""
    from imgret.runtime.catalogue import Catalogue
    from imgret.runtime.library import Library

    with Library.open(lib100k) as src:
        rows = [r for r in src.catalogue.rows("ok")]
        index = src.vector_file.searchable().settled
        base = np.vstack(index.get(np.asarray([r.key for r in rows], dtype=np.uint64))).astype(np.float32)
        meta = {k: v for k, v in src.catalogue.meta().items() if not k.startswith("index_")}
        root100k = src.catalogue.root_folders()[0]
    os.makedirs(lib)
    cat = Catalogue(os.path.join(lib, "catalogue.sqlite"))
    cat.set_meta(**{k: v for k, v in meta.items() if k != "writer"}, writer="closed")
    cat.add_root(pics)
    rng = np.random.default_rng(0)
    for c in range(copies):
        vecs = base if c == 0 else base + rng.normal(0, 0.02, size=base.shape).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for r, v in zip(rows, vecs):
            p = os.path.join(pics, f"c{c}", os.path.relpath(r.path, root100k))
            st = os.stat(p)
            cat.put_ok(p, st.st_size, st.st_mtime_ns, r.sha256, v)
        cat.commit()
        log(f"  copy {c} catalogued")
    cat.close()


# -- measurements -------------------------------------------------------------------------------------
WALK = """
import os, sys, time
def walk(d):
    n = 0
    with os.scandir(d) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                n += walk(e.path)
            else:
                os.stat(e.path); n += 1
    return n
"""
WALK_RUN = WALK + "t = time.perf_counter(); n = walk(sys.argv[1]); print(n, time.perf_counter() - t)\n"


def bare_walk(pics: Path) -> tuple[float, float]:
    """(process wall seconds, in-process walk seconds) of a bare os.scandir + os.stat walk."""
    t = time.perf_counter()
    out = subprocess.run([PY, "-c", WALK_RUN, str(pics)], capture_output=True, text=True, check=True).stdout.split()
    return time.perf_counter() - t, float(out[1])


def median(fn, n: int = 3):
    runs = [fn() for _ in range(n)]
    return sorted(runs, key=lambda r: r[0] if isinstance(r, tuple) else r)[len(runs) // 2]


def no_change(size: str, pics: Path, lib: Path) -> None:
    walk_wall, walk_inner = median(lambda: bare_walk(pics))
    wall, rss, err = median(lambda: imgret("index", pics, "--library", lib, "--no-progress"))
    inner = float(err.rsplit(" in ", 1)[1].split("s")[0])
    emit({"what": "no-change re-index", "size": size, "process_s": round(wall, 2), "run_s": round(inner, 2),
          "bare_walk_process_s": round(walk_wall, 2), "bare_walk_s": round(walk_inner, 2),
          "ratio_process": round(wall / walk_wall, 2), "ratio_run_vs_walk": round(inner / walk_inner, 2),
          "peak_rss_mb": rss >> 20, "summary": err.strip().splitlines()[0]})


def add_100(size: str, pics: Path, lib: Path) -> None:
    from imgret.runtime.encoder import Encoder

    new = pics / "zz-added"
    shutil.rmtree(new, ignore_errors=True)
    write_pictures(new, 100, start=5_000_000)
    (new / ".done").unlink()
    t = time.perf_counter()
    Encoder.default().embed(sorted(str(p) for p in new.rglob("*.jpg")))
    embed = time.perf_counter() - t
    wall, rss, err = imgret("index", pics, "--library", lib, "--no-progress")
    walk = median(lambda: imgret("index", pics, "--library", lib, "--no-progress"))[0]
    shutil.rmtree(new)
    imgret("index", pics, "--library", lib, "--no-progress")  # back to the library as built
    emit({"what": "add 100", "size": size, "process_s": round(wall, 2), "no_change_s": round(walk, 2),
          "embed_100_s": round(embed, 2), "ratio": round(wall / (walk + embed), 2), "peak_rss_mb": rss >> 20,
          "summary": err.strip().splitlines()[0]})


def first_picture(folder: Path) -> Path:
    """The first picture in name order (without listing a million files)."""
    while True:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        for e in entries:
            if e.name.endswith(".jpg"):
                return Path(e.path)
        folder = Path(next(e.path for e in entries if e.is_dir() and not e.name.startswith(".")))


def evict(lib: Path) -> None:
    """Drop the library's files from the page cache (what a cold start after a reboot reads)."""
    for p in lib.iterdir():
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd) if p.suffix in (".sqlite",) else None
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def compiled_bytecode() -> None:
    """Write imgret's bytecode, as ``pip install`` does: under PYTHONDONTWRITEBYTECODE (set on the
    development machine) an editable checkout would otherwise compile imgret's source in every new
    process, ~0.1 s that no installed copy pays."""
    import compileall

    import imgret

    compileall.compile_dir(os.path.dirname(imgret.__file__), quiet=1)


def timed(argv: list) -> tuple[float, float, int]:
    """Run ``argv`` as a new process: (wall seconds, CPU seconds (user + system), peak RSS bytes).
    CPU time barely moves with the machine's load, wall time does."""
    t = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {err}")
    return time.perf_counter() - t, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def library_copy(lib: Path, into: Path) -> tuple[Path, float]:
    """A copy of ``lib`` (the cached library is never written) upgraded by the writer's own refresh:
    a library whose vector file has no key → slot table yet gets one (read from the file's graph after
    a full checksum; no HNSW rebuild). Returns the copy and the upgrade's wall seconds."""
    copy = into / "lib"
    shutil.copytree(lib, copy, ignore=shutil.ignore_patterns("lock"))
    t = time.perf_counter()
    code = f"from imgret.runtime.library import Library\nwith Library.open_writable({str(copy)!r}) as lib: lib.refresh_index()"
    subprocess.run([PY, "-c", code], check=True)
    return copy, time.perf_counter() - t


def cold_query(size: str, pics: Path, lib: Path, runs: int = 7) -> None:
    """A whole ``imgret query`` as a new process, alternated run by run with the bare import of its
    dependencies (so both see the same machine load): medians, their ratio, and the median of the
    per-pair ratios. Then a picture outside the library (decoded and embedded: onnxruntime opens the
    model), and the library's files evicted from the page cache. Runs on an upgraded copy of ``lib``
    (:func:`library_copy`) in a temporary folder."""
    import tempfile

    compiled_bytecode()
    work = Path(tempfile.mkdtemp(prefix="imgret-scale-"))
    try:
        lib, upgrade_s = library_copy(lib, work)
        _cold_query(size, pics, lib, runs, work / "outside", upgrade_s)
    finally:
        shutil.rmtree(work)


def _cold_query(size: str, pics: Path, lib: Path, runs: int, elsewhere: Path, upgrade_s: float) -> None:  # noqa: PLR0913
    query = first_picture(pics)
    write_pictures(elsewhere, 1, start=10_000_000)  # a picture the library does not hold
    bare, lean, leaner, warm, new = [], [], [], [], []
    query_argv = [PY, "-m", "imgret", "query", "--library", lib, "-N", "10"]
    for _ in range(runs):
        bare.append(timed([PY, "-c", DEPS]))
        lean.append(timed([PY, "-c", DEPS_LIBRARY_PICTURE]))
        leaner.append(timed([PY, "-c", DEPS_OWN_READER]))
        warm.append(timed([*query_argv, query]))
        new.append(timed([*query_argv, first_picture(elsewhere)]))

    def mid(rows, i):  # the median of field i (0 wall, 1 CPU, 2 RSS) over runs
        return sorted(r[i] for r in rows)[len(rows) // 2]

    def cold():
        evict(lib)
        return timed([*query_argv, query])

    dropped = median(cold, 3)
    emit({"what": "cold query (new process)", "size": size, "runs": runs,
          "query_s": round(mid(warm, 0), 3), "bare_import_s": round(mid(bare, 0), 3),
          "ratio": round(mid(warm, 0) / mid(bare, 0), 2),
          "ratio_pairs": round(sorted(w[0] / b[0] for w, b in zip(warm, bare))[runs // 2], 2),
          "query_cpu_s": round(mid(warm, 1), 3), "bare_import_cpu_s": round(mid(bare, 1), 3),
          "ratio_cpu": round(mid(warm, 1) / mid(bare, 1), 2),
          "outside_picture_s": round(mid(new, 0), 3), "outside_picture_cpu_s": round(mid(new, 1), 3),
          "bare_import_no_ort_pil_s": round(mid(lean, 0), 3), "bare_import_no_ort_pil_cpu_s": round(mid(lean, 1), 3),
          "bare_import_no_usearch_s": round(mid(leaner, 0), 3),
          "ratio_no_usearch": round(mid(warm, 0) / mid(leaner, 0), 2),
          "upgrade_s": round(upgrade_s, 2),
          "rss_mb": mid(warm, 2) >> 20, "bare_rss_mb": mid(bare, 2) >> 20, "library_evicted_s": round(dropped[0], 3)})


def disk(size: str, lib: Path, pictures: int) -> None:
    import sqlite3

    db = sqlite3.connect(lib / "catalogue.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    files = {p.name: p.stat().st_size for p in lib.iterdir() if p.is_file() and p.name != "lock"}
    total = sum(v for k, v in files.items() if not k.endswith(".onnx"))
    emit({"what": "disk", "size": size, "bytes_per_picture": round(total / pictures),
          "catalogue_per_picture": round(files.get("catalogue.sqlite", 0) / pictures),
          "vector_file_per_picture": round(sum(v for k, v in files.items() if k.endswith(".usearch")) / pictures)})


def search_choice(lib100k: Path, lib1m: Path | None) -> None:
    """Exact vs HNSW time per single query at growing sizes (the crossover), and HNSW recall@10."""
    from imgret.runtime import vectors
    from imgret.runtime.library import Library

    with Library.open(lib100k) as lib:
        settled = lib.vector_file.searchable().settled
        keys = np.asarray(settled.keys, dtype=np.uint64)
        data = np.vstack(settled.get(keys)).astype(np.float32)
    rng = np.random.default_rng(1)
    queries = data[rng.choice(len(data), 50, replace=False)] + rng.normal(0, 0.01, (50, data.shape[1])).astype(np.float32)
    for n in (2_000, 5_000, 10_000, 20_000, 50_000, 100_000):
        index = vectors.build(keys[:n], data[:n], "cosine")
        t = time.perf_counter()
        for q in queries:
            index.search(q, 10, exact=True)
        exact = (time.perf_counter() - t) / len(queries)
        t = time.perf_counter()
        for q in queries:
            index.search(q, 10, exact=False)
        hnsw = (time.perf_counter() - t) / len(queries)
        emit({"what": "search per query", "vectors": n, "exact_ms": round(exact * 1e3, 3), "hnsw_ms": round(hnsw * 1e3, 3)})
    for name, folder in (("100k", lib100k), ("1M", lib1m)):
        if folder is None:
            continue
        with Library.open(folder) as lib:
            index = lib.vector_file.searchable().settled
            q = queries[:30]
            exact = index.search(q, 10, exact=True).keys
            approx = index.search(q, 10).keys
            recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
            emit({"what": "HNSW recall@10 vs exact", "size": name, "recall": round(float(recall), 4),
                  "expansion_search": vectors.EXPANSION_SEARCH})
    for dtype in ("f16", "i8"):
        from usearch.index import Index

        idx = Index(ndim=data.shape[1], metric="cos", dtype=dtype, expansion_search=vectors.EXPANSION_SEARCH)
        idx.add(keys, data)
        exact = vectors.build(keys, data, "cosine").search(queries, 10, exact=True).keys
        approx = idx.search(queries, 10).keys
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
        emit({"what": "dtype", "dtype": dtype, "vectors": len(keys), "bytes": len(bytes(idx.save())),
              "f32_bytes": len(bytes(vectors.build(keys, data, "cosine").save())), "recall@10_vs_f32_exact": round(float(recall), 4)})


def compiled_as_installed() -> None:
    """Compile imgret's modules to bytecode, as ``pip install`` does: a checkout whose environment sets
    PYTHONDONTWRITEBYTECODE (this machine's does) would otherwise compile every changed module from
    source in every timed process (~25 ms for a query after a change to the query path)."""
    import compileall

    import imgret

    compileall.compile_dir(os.path.dirname(imgret.__file__), quiet=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/work/bench-cache/scale"))
    ap.add_argument("--sizes", default="10k,100k,1M")
    ap.add_argument("--skip", default="", help="comma-separated: nochange,add,query,disk,search")
    args = ap.parse_args()
    sizes, skip = args.sizes.split(","), set(args.skip.split(","))
    cache = args.cache
    emit({"what": "machine", "cpus": os.cpu_count(), "load": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    compiled_as_installed()
    write_pictures(cache / "p100k", 100_000)
    if not (cache / "p10k").exists():
        shutil.copytree(cache / "p100k", cache / "p10k", ignore=lambda d, names: [n for n in names if n.startswith("d") and int(n[1:]) >= 10] + [".done"])
    libs = {}
    if "10k" in sizes:
        build_real(cache / "p10k", cache / "lib10k", 10_000)
        libs["10k"] = (cache / "p10k", cache / "lib10k", 10_000)
    if "100k" in sizes or "1M" in sizes:
        build_real(cache / "p100k", cache / "lib100k", 100_000)
        libs["100k"] = (cache / "p100k", cache / "lib100k", 100_000)
    if "1M" in sizes:
        libs["1M"] = (cache / "p1m", build_million(cache, cache / "lib100k"), 1_000_000)
    for size, (pics, lib, count) in libs.items():
        if size not in sizes:
            continue
        if "nochange" not in skip:
            no_change(size, pics, lib)
        if "add" not in skip:
            add_100(size, pics, lib)
        if "query" not in skip:
            cold_query(size, pics, lib)
        if "disk" not in skip:
            disk(size, lib, count)
    if "search" not in skip and "100k" in libs:
        search_choice(libs["100k"][1], libs["1M"][1] if "1M" in libs else None)


if __name__ == "__main__":
    main()
