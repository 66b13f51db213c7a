"""An index run: scan, decide what changed, embed only that, commit in batches, refresh the vector file.

What changed is decided folder by folder: a folder whose pictures (names, sizes, mtimes, inodes) give
the signature recorded when the catalogue last matched it is unchanged without reading its rows;
any other folder's rows are read and compared file by file. Folders recorded but not found are gone.
A folder's signature is recorded in the run's last transaction, only when each of its pictures was
stored (a file passed over to be tried again keeps its folder unsigned).

Work is committed every :data:`COMMIT_EVERY` files (or :data:`COMMIT_SECONDS`), so an interrupted run
keeps what it did and the next run carries on from there: a committed file whose size and mtime still
match is "unchanged". Vectors are reused by content hash, so renamed or duplicated files are not
embedded again. Files that vanished from the scanned tree are removed at the end, except below
folders that could not be read this time (their files are kept, not lost).

Crash tests steer where a run dies through the environment (see :class:`_Faults`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from imgret.errors import LibraryError
from imgret.runtime import vectors
from imgret.runtime.batching import EmbedBatcher, meanwhile, prepared_stream
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.encoder import Encoder
from imgret.runtime.prepare import Prepared
from imgret.runtime.progress import ProgressCallback
from imgret.runtime.results import IndexReport
from imgret.runtime.scan import Found, Listing, Scan
from imgret.runtime.scan_split import walk_helper
from imgret.runtime.spool import FoundList
from imgret.runtime.vector_file import VectorFile

COMMIT_EVERY = 256
COMMIT_SECONDS = 10.0
# Skips not remembered in the catalogue, so the next run tries again: fixing a file's permissions
# changes neither its size nor its mtime, and a remembered skip would never be retried.
RETRY_REASONS = ("missing", "permission-denied", "unreadable")
# Where prepared files come from: ``source(paths, size)`` yields one Prepared per path, in order. The
# default decodes in local worker processes; a cluster (imgret.runtime.cluster) decodes and embeds remotely.
PreparedSource = Callable[[Sequence[str], int], Iterable[Prepared]]


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class _Faults:
    """Test-only kill switches, read from the environment once per run, so a seed picks the moment.

    ``IMGRET_FAULT_POINT=NAME`` kills at a named point; ``IMGRET_FAULT_AFTER_COMMITS=N`` kills right
    after the N-th batch commit or, with ``IMGRET_FAULT_AFTER_STORED=M``, once M more files have been
    written into the open transaction after it (N may be 0: before the first commit).
    """

    def __init__(self) -> None:
        self.point = os.environ.get("IMGRET_FAULT_POINT") or None
        self.after_commits = _env_int("IMGRET_FAULT_AFTER_COMMITS", -1)
        self.after_stored = _env_int("IMGRET_FAULT_AFTER_STORED", 0)
        self.commits = self.stored = 0

    def at(self, point: str) -> None:
        """Die here if this is the chosen point."""
        if point == self.point:
            _die()

    def batch_committed(self) -> None:
        self.commits += 1
        self.stored = 0
        if self.commits == self.after_commits and self.after_stored == 0:
            _die()

    def file_stored(self) -> None:
        self.stored += 1
        if self.commits == self.after_commits and self.stored == self.after_stored:
            _die()


def fault_point(point: str) -> None:
    """Test-only: die at a named point outside an index run (e.g. ``during-upgrade``)."""
    if os.environ.get("IMGRET_FAULT_POINT") == point:
        _die()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Change detection makes a tuple per catalogue row and per picture, none of them in a cycle;
    the cyclic garbage collector would walk them all again and again (about a sixth of a no-change
    run at 100k). Paused around it, and restored."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class _Changes:
    """What a walk found to do besides embedding."""

    gone: list[int] = field(default_factory=list)  # keys of rows whose file was not found in its folder
    listed: dict[str, bytes | None] = field(default_factory=dict)  # folders compared, and their signatures
    vanished: list[str] = field(default_factory=list)  # recorded folders not found
    unreadable: list[str] = field(default_factory=list)  # folders that could not be read: rows kept


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class Indexer:
    """Writes pictures into a library's catalogue and keeps its vector file in step.

    It is given the typed parts it works on; the caller (:class:`~imgret.runtime.library.Library`)
    holds the writer lock for as long as the indexer is used.
    """

    def __init__(
        self, catalogue: Catalogue, encoder: Encoder, vector_file: VectorFile, *, exclude: Iterable[str] = ()
    ) -> None:
        """``exclude``: folders never scanned (the library folder itself, when inside the pictures)."""
        self.catalogue, self.encoder, self.vector_file = catalogue, encoder, vector_file
        self.exclude = tuple(os.fspath(e) for e in exclude)
        self.commit_every = max(1, _env_int("IMGRET_COMMIT_EVERY", COMMIT_EVERY))
        self.faults = _Faults()
        # Folders with a picture not stored this run (to be tried again): not signed, so compared next run.
        self._unsettled: set[str] = set()

    def index_folder(
        self, root, *, progress: ProgressCallback | None = None, workers: int | None = None,
        follow_outside: bool = False, source: PreparedSource | None = None,
    ) -> IndexReport:
        """Bring the catalogue up to date with every picture under ``root``; returns what was done.

        With nothing changed this costs the walk (a ``stat`` per picture and a signature per folder)
        and one query of the folder signatures: no file row is read, the vector file is neither read
        nor written and the library's generation stays as it was.
        ``source`` replaces the local decode workers (``workers`` is then unused), e.g. by a cluster's.
        """
        start = time.monotonic()
        report = IndexReport()
        root_abs = os.path.abspath(os.fspath(root))
        if not os.path.exists(root_abs):
            raise LibraryError(f"no such file or folder: {os.fspath(root)}")
        report.vectors_lost = self.vector_file.ensure_sound()
        self._unsettled = set()
        with _collector_paused():
            if os.path.isdir(root_abs):
                self.catalogue.add_root(root_abs)
                todo, changes = self._changed(root_abs, report, follow_outside, workers)
            else:
                todo, changes = self._changed_file(root_abs, report)
        source = source or functools.partial(prepared_stream, workers=workers)
        # usearch is needed by refresh() below: loaded while the pictures are embedded.
        with todo, meanwhile(vectors.usearch_index_class if todo else None):
            self._embed_all(todo, report, progress=progress, source=source)
        report.removed = self._settle(changes, report)
        self.faults.at("before-final-commit")
        self._commit()
        self.vector_file.forget()
        self.faults.at("after-final-commit")
        report.vector_file = self.vector_file.refresh()
        self.faults.at("after-index-save")
        report.seconds = time.monotonic() - start
        return report

    def index_files(self, paths: Iterable[str | os.PathLike]) -> IndexReport:
        """Index an explicit list of picture files (the library API's ``add``)."""
        report = IndexReport()
        todo, seen = FoundList(), set()
        for p in (os.path.abspath(os.fspath(p)) for p in paths):
            try:
                st = os.stat(p)
            except OSError as exc:
                report.pass_over(p, "missing" if isinstance(exc, FileNotFoundError) else "unreadable")
                continue
            if p not in seen:  # each file once, however often it is named
                seen.add(p)
                todo.append(Found(p, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)))
        with todo:
            self._embed_all(todo, report, progress=None, source=functools.partial(prepared_stream, workers=0))
        self._commit()
        self.vector_file.forget()
        report.vector_file = self.vector_file.refresh()
        return report

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Forget the given files (the pictures themselves are not touched); returns how many were known."""
        keys = []
        for p in paths:
            row = self.catalogue.lookup(os.path.abspath(os.fspath(p)))
            if row:
                keys.append(row.key)
        if keys:
            self.catalogue.delete(keys)
            self._commit()
            self.vector_file.forget()
            self.vector_file.refresh()
        return len(keys)

    def _commit(self) -> None:
        self.catalogue.commit()

    def _changed(self, root: str, report: IndexReport, follow_outside: bool,
                 workers: int | None) -> tuple[FoundList, _Changes]:
        """Walk ``root``: the files to embed, and what else changed. Only folders whose signature
        differs from the recorded one have their rows read (:meth:`_compare`). A big tree is walked
        in two processes (:mod:`imgret.runtime.scan_split`), the helper started first."""
        with walk_helper(self.catalogue.size_hint(), workers) as helper:
            folders = self.catalogue.folder_signatures(root)
            walk = Scan(root, follow_outside=follow_outside, exclude=self.exclude, signatures=folders, helper=helper)
            return self._walked(walk, report, folders)

    def _walked(self, walk: Scan, report: IndexReport, folders: dict) -> tuple[FoundList, _Changes]:
        todo = FoundList()  # packed, and on disk when large: a first index of 1M stays flat in memory
        changes = _Changes()
        for item in walk.listings():
            if type(item) is not Listing:  # a folder that could not be listed: its rows are kept
                report.pass_over(item.path, item.reason)
                if item.reason in ("permission-denied", "unreadable") and os.path.isdir(item.path):
                    changes.unreadable.append(item.path)
                continue
            for skip in item.skipped:
                report.pass_over(skip.path, skip.reason)  # never recorded: `info` does not count it
            if item.found is not None:  # its signature differs: compare its rows
                changes.listed[item.folder] = item.signature
                self._compare(item, report, todo, changes)
        report.unchanged += walk.unchanged
        changes.vanished = list(folders)  # what the walk did not take out
        return todo, changes

    def _compare(self, listing: Listing, report: IndexReport, todo: FoundList, changes: _Changes) -> None:
        """One folder, file by file against its rows: new or changed pictures go to ``todo``, rows of
        files no longer there to ``changes.gone``."""
        pictures, others = self.catalogue.known_in(listing.folder, listing.subfolders)
        for skip in listing.skipped:  # e.g. unreadable this time: kept, not forgotten
            pictures.pop(skip.path, None)
            others.pop(skip.path, None)
        for item in listing.found:
            row, skip_row = pictures.pop(item.path, None), others.pop(item.path, None)
            old = row or skip_row
            if old is None or old[1] != item.size or old[2] != item.mtime_ns:
                todo.append(item)  # new, or changed since it was recorded
            elif skip_row is None:
                report.unchanged += 1
            else:  # still recorded as skipped: counted with its reason, as `imgret info` counts it
                report.previously_skipped += 1
                report.skip(item.path, skip_row[4])
        changes.gone += [r[3] for r in pictures.values()] + [r[3] for r in others.values()]

    def _changed_file(self, path: str, report: IndexReport) -> tuple[FoundList, _Changes]:
        """A single file given as the root."""
        item = next(iter(Scan(path)))
        if type(item) is not Found:
            report.pass_over(item.path, item.reason)  # its row, if any, is kept
            return FoundList(), _Changes()
        row = self.catalogue.lookup(path)
        if row is None or not row.matches(item.size, item.mtime_ns):
            return FoundList([item]), _Changes()
        if row.skip_reason is None:
            report.unchanged += 1
        else:
            report.previously_skipped += 1
            report.skip(path, row.skip_reason)
        return FoundList(), _Changes()

    def _settle(self, changes: _Changes, report: IndexReport) -> int:
        """Forget the files not found (except below folders that could not be read) and sign the
        folders compared whose pictures were all stored; returns how many files were forgotten."""
        keep_under = tuple(d.rstrip(os.sep) + os.sep for d in changes.unreadable)
        vanished = [f for f in changes.vanished if not (keep_under and (f + os.sep).startswith(keep_under))]
        gone = changes.gone
        for folder in vanished:
            pictures, others = self.catalogue.known_in(folder)
            gone += [r[3] for r in pictures.values()] + [r[3] for r in others.values()]
        removed = self.catalogue.delete(gone)
        self.catalogue.forget_folders(vanished)
        # Folders holding recorded skips stay unsigned too: a report lists each skipped file, which only
        # its row can tell (few folders hold one).
        unsettled = self._unsettled | {os.path.dirname(path) for paths in report.skipped.values() for path in paths}
        self.catalogue.set_signatures({f: None if f in unsettled else s for f, s in changes.listed.items()})
        return removed

    def _embed_all(self, todo: FoundList, report: IndexReport, *, progress, source: PreparedSource) -> None:
        batcher: EmbedBatcher[tuple[Prepared, Found]] = EmbedBatcher(
            self.encoder, lambda tag, vec: self._store(report, tag[0], tag[1], vec))
        since_commit, last_commit = 0, time.monotonic()
        # A source yields one result per path, in order, so the two lists are read side by side.
        for done, (found, prep) in enumerate(zip(todo, source(todo.paths, self.encoder.size), strict=True), 1):
            if prep.path != found.path:
                raise RuntimeError(f"decode source out of order: {prep.path} for {found.path}")
            self._take(batcher, report, prep, found)
            since_commit += 1
            if progress:
                progress(done, len(todo))
            if since_commit >= self.commit_every or time.monotonic() - last_commit > COMMIT_SECONDS:
                batcher.flush()
                self.faults.at("before-batch-commit")
                self._commit()
                self.faults.at("after-batch-commit")
                self.faults.batch_committed()
                since_commit, last_commit = 0, time.monotonic()
        batcher.flush()

    def _take(self, batcher: EmbedBatcher, report: IndexReport, prep: Prepared, found: Found) -> None:
        """Skip, reuse a stored vector with the same content, or queue one prepared file for embedding."""
        if not prep.ok:
            if prep.reason in RETRY_REASONS:
                report.pass_over(found.path, prep.reason)  # not recorded, so tried again next run
                self._unsettled.add(os.path.dirname(found.path))
                return
            self.catalogue.put_skipped(found.path, found.size, found.mtime_ns, prep.reason or "unreadable",
                                       prep.sha256)
            report.skip(found.path, prep.reason or "unreadable")
            return
        if prep.sha256 and any(p.sha256 == prep.sha256 for p, _ in batcher.tags()):
            batcher.flush()  # a duplicate of a picture still waiting to be embedded: embed it, then reuse
        reuse = self.catalogue.vector_by_hash(prep.sha256) if prep.sha256 else None
        if reuse is not None and reuse.shape == (self.encoder.dim,):
            report.reused += 1
            self._store(report, prep, found, reuse)
        elif prep.vector is not None:  # embedded by a cluster worker
            self._store(report, prep, found, prep.vector)
        else:
            batcher.add((prep, found), prep.pixels)

    def _store(self, report: IndexReport, prep: Prepared, found: Found, vec: np.ndarray) -> None:
        cat = self.catalogue
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
        self.faults.file_stored()
