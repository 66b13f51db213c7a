"""An index run: scan, decide what changed, embed only that, commit in batches, refresh the index file.

Work is committed every :data:`COMMIT_EVERY` files (or :data:`COMMIT_SECONDS`), so an interrupted run
keeps what it did and the next run carries on from there: a committed file whose size and mtime still
match is "unchanged". Vectors are reused by content hash, so renamed or duplicated files are not
embedded again. Files that vanished from the scanned tree are removed at the end, except below
folders that could not be read this time (their files are kept, not lost).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from imgret.runtime.prepare import Prepared, prepare, prepare_many
from imgret.runtime.scan import Found, Skipped, scan

COMMIT_EVERY = 256
COMMIT_SECONDS = 10.0
CHUNK = 16  # files per worker task
# Skips not remembered in the catalogue, so the next run tries again: fixing a file's permissions
# changes neither its size nor its mtime, and a remembered skip would never be retried.
RETRY_REASONS = ("missing", "permission-denied", "unreadable")
_fault_hook: Callable[[str], None] | None = None  # tests install one to kill at named commit points


def _fault(point: str) -> None:
    hook = _fault_hook
    if hook is None and os.environ.get("IMGRET_FAULT_POINT"):
        if os.environ["IMGRET_FAULT_POINT"] == point:
            os.kill(os.getpid(), 9)
    elif hook is not None:
        hook(point)


def _commit_every() -> int:
    """:data:`COMMIT_EVERY`, or ``$IMGRET_COMMIT_EVERY`` (crash tests commit every few files)."""
    try:
        return max(1, int(os.environ.get("IMGRET_COMMIT_EVERY", COMMIT_EVERY)))
    except ValueError:
        return COMMIT_EVERY


def index_folder(library, root, *, progress=None, workers: int | None = None, follow_outside: bool = False):
    """Index every picture under ``root`` into ``library``; returns an :class:`IndexReport`."""
    from imgret.runtime.library import IndexReport

    start = time.monotonic()
    report = IndexReport()
    root_abs = os.path.abspath(os.fspath(root))
    if not os.path.exists(root_abs):
        from imgret.errors import LibraryError

        raise LibraryError(f"no such file or folder: {os.fspath(root)}")
    cat = library.catalogue
    todo: list[Found] = []
    seen: set[str] = set()
    unreadable_dirs: list[str] = []
    for item in scan(root_abs, follow_outside=follow_outside, exclude=(str(library.folder),)):
        if isinstance(item, Skipped):
            seen.add(item.path)
            if item.reason in ("permission-denied", "unreadable") and os.path.isdir(item.path):
                unreadable_dirs.append(item.path)
            report.skip(item.path, item.reason)
            continue
        seen.add(item.path)
        row = cat.lookup(item.path)
        if row is not None and row.size == item.size and row.mtime_ns == item.mtime_ns:
            if row.status == "ok":
                report.unchanged += 1
            else:
                report.previously_skipped += 1
            continue
        todo.append(item)
    _embed_all(library, todo, report, progress=progress, workers=workers)
    removed = _remove_vanished(cat, root_abs, seen, unreadable_dirs)
    report.removed = removed
    _fault("before-final-commit")
    cat.bump_generation()
    cat.commit()
    _fault("after-final-commit")
    library.refresh_index()
    _fault("after-index-save")
    report.seconds = time.monotonic() - start
    return report


def index_files(library, paths: list[str]):
    """Index an explicit list of files (the library API's ``add``)."""
    from imgret.runtime.library import IndexReport

    report = IndexReport()
    todo = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError as exc:
            report.skip(p, "missing" if isinstance(exc, FileNotFoundError) else "unreadable")
            continue
        todo.append(Found(p, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)))
    _embed_all(library, todo, report, progress=None, workers=0)
    library.catalogue.bump_generation()
    library.catalogue.commit()
    library.refresh_index()
    return report


def _prepared_stream(paths: list[str], size: int, workers: int | None):
    """Yield :class:`Prepared` results in order, using spawned worker processes for large jobs."""
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(paths) < 4 * CHUNK:
        for p in paths:
            yield prepare(p, size)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(paths[i:i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        for batch in pool.map(prepare_many, chunks):
            yield from batch


def _embed_all(library, todo: list[Found], report, *, progress, workers) -> None:
    cat = library.catalogue
    enc = library.encoder
    by_path = {f.path: f for f in todo}
    pending: list[tuple[Prepared, Found]] = []
    since_commit = 0
    last_commit = time.monotonic()
    done = 0
    commit_every = _commit_every()

    def flush() -> None:
        nonlocal pending
        if not pending:
            return
        batch = np.stack([p.pixels for p, _ in pending])
        vecs = enc.embed_arrays(batch)
        for (prep, found), vec in zip(pending, vecs):
            _store(cat, report, prep, found, vec)
        pending = []

    for prep in _prepared_stream([f.path for f in todo], enc.size, workers):
        found = by_path[prep.path]
        if prep.pixels is None:
            if prep.reason not in RETRY_REASONS:
                cat.put_skipped(found.path, found.size, found.mtime_ns, prep.reason or "unreadable", prep.sha256)
            report.skip(found.path, prep.reason or "unreadable")
        else:
            if prep.sha256 and any(p.sha256 == prep.sha256 for p, _ in pending):
                flush()  # a duplicate of a picture still waiting to be embedded: embed it, then reuse
            reuse = cat.vector_by_hash(prep.sha256) if prep.sha256 else None
            if reuse is not None and reuse.shape == (enc.dim,):
                report.reused += 1
                _store(cat, report, prep, found, reuse)
            else:
                pending.append((prep, found))
                if len(pending) >= 32:
                    flush()
        done += 1
        since_commit += 1
        if progress:
            progress(done, len(todo))
        if since_commit >= commit_every or time.monotonic() - last_commit > COMMIT_SECONDS:
            flush()
            _fault("before-batch-commit")
            cat.bump_generation()
            cat.commit()
            _fault("after-batch-commit")
            since_commit = 0
            last_commit = time.monotonic()
    flush()


def _store(cat, report, prep: Prepared, found: Found, vec: np.ndarray) -> None:
    vec = np.asarray(vec, dtype=np.float32)
    if not np.all(np.isfinite(vec)) or float(np.linalg.norm(vec)) < 1e-12:
        cat.put_skipped(found.path, found.size, found.mtime_ns, "bad-vector", prep.sha256)
        report.skip(found.path, "bad-vector")
        return
    existed = cat.lookup(found.path) is not None
    cat.put_ok(found.path, found.size, found.mtime_ns, prep.sha256, vec)
    if existed:
        report.updated += 1
    else:
        report.added += 1


def _remove_vanished(cat, root: str, seen: set[str], unreadable_dirs: list[str]) -> int:
    prefix = root.rstrip(os.sep) + os.sep
    keep_under = tuple(d.rstrip(os.sep) + os.sep for d in unreadable_dirs)
    gone = []
    for row in cat.rows():
        p = row.path
        if p != root and not p.startswith(prefix):
            continue
        if p in seen or (keep_under and p.startswith(keep_under)):
            continue
        gone.append(row.key)
    return cat.delete(gone)
