"""A library: a folder holding the catalogue, the derived vector index and a writer lock.

Layout of a library folder::

    catalogue.sqlite   source of truth: files, vectors, skip reasons, model fingerprint (SQLite, WAL)
    vectors.usearch    derived usearch index of the vectors; rebuilt from the catalogue when missing,
                       stale or damaged (its checksum, count and generation live in the catalogue)
    lock               held (flock) by the one process allowed to write

Readers never take the lock: they read the last committed state. A second writer fails at once
with :class:`~imgret.errors.LibraryLockedError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgret.errors import ImageError, LibraryError, LibraryLockedError, ModelMismatchError
from imgret.runtime import imageio, vectors
from imgret.runtime.catalogue import CATALOGUE_FORMAT, Catalogue
from imgret.runtime.encoder import Encoder
from imgret.runtime.modelinfo import RESIZE_RULE

CATALOGUE_FILE = "catalogue.sqlite"
INDEX_FILE = "vectors.usearch"
LOCK_FILE = "lock"

ProgressFn = Callable[[int, int], None]


def default_library_dir() -> Path:
    """The per-user library: ``$IMGRET_INDEX``, else the platform's user data directory."""
    env = os.environ.get("IMGRET_INDEX")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    return base / "imgret" / "library"


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    path: str
    distance: float


@dataclass(frozen=True)
class QueryResult:
    """The results for one query picture."""

    query: str
    hits: list[Hit]


@dataclass
class IndexReport:
    """What an index run did; ``skipped`` maps each reason to the paths skipped for it."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    reused: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    previously_skipped: int = 0
    seconds: float = 0.0

    def skip(self, path: str, reason: str) -> None:
        self.skipped.setdefault(reason, []).append(path)

    @property
    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())


class _Lock:
    def __init__(self, path: Path) -> None:
        import fcntl

        self.fh = open(path, "a+b")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.fh.close()
            raise LibraryLockedError(
                f"library {path.parent} is locked: another `imgret index` is writing to it; "
                "wait for it to finish"
            ) from exc

    def release(self) -> None:
        if not self.fh.closed:
            self.fh.close()


class Library:
    """Pictures indexed by one encoder; add, remove and query them.

    ``Library(folder, model=...)`` opens (creating with ``writable=True``) a library folder. ``model`` is a
    bundled model name or .onnx path; when omitted, the model the library was built with is used
    (or the bundled default for a new library).
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        *,
        model: str | os.PathLike | None = None,
        writable: bool = False,
        rebuild: bool = False,
        threads: int | None = None,
        load_model: bool = True,
    ) -> None:
        """``load_model=False`` (read-only only) opens the catalogue without the encoder, for ``info``."""
        from imgret import models

        self.folder = Path(folder) if folder is not None else default_library_dir()
        self.writable = writable
        self._lock: _Lock | None = None
        self._index = None
        cat_path = self.folder / CATALOGUE_FILE
        if not writable and not cat_path.is_file():
            raise LibraryError(
                f"no library at {self.folder}: run `imgret index FOLDER` first (or pass --index / IMGRET_INDEX)"
            )
        encoder = None
        if not load_model and writable:
            raise ValueError("a writable library needs its model")
        if load_model and (model is not None or not cat_path.is_file()):  # check a named or default model before touching
            ref, path = models.resolve(model)
            encoder = Encoder(path, threads=threads, name=ref)
        if writable:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"cannot create library folder {self.folder}: {exc.strerror}") from exc
            if not self.folder.is_dir():
                raise LibraryError(f"library path {self.folder} is not a folder")
            self._lock = _Lock(self.folder / LOCK_FILE)
        try:
            self.catalogue = Catalogue(str(cat_path), readonly=not writable)
        except BaseException:
            self._release()
            raise
        try:
            recorded = self.catalogue.meta()
            if not writable and "model_fingerprint" not in recorded:
                raise LibraryError(f"library {self.folder} has no model recorded; run `imgret index` first")
            if not load_model:
                self.encoder = None
                self.model_ref = recorded.get("model_ref")
                return
            if encoder is None:
                ref, path = models.resolve(recorded.get("model_ref") or None)
                encoder = Encoder(path, threads=threads, name=ref)
            self.encoder = encoder
            self.model_ref = encoder.name
            self._check_model(recorded, rebuild)
        except BaseException:
            self.close()
            raise

    # -- model bookkeeping --------------------------------------------------------------------------
    def _model_meta(self) -> dict[str, object]:
        info = self.encoder.info
        return {
            "format_version": CATALOGUE_FORMAT,
            "model_ref": self.model_ref,
            "model_id": info.model_id,
            "model_fingerprint": self.encoder.fingerprint,
            "input_size": info.input_size,
            "resize": RESIZE_RULE,
            "embedding_dim": info.embedding_dim,
            "metric": info.metric,
        }

    def _check_model(self, recorded: dict[str, str], rebuild: bool) -> None:
        fmt = recorded.get("format_version")
        if fmt is not None and int(fmt) > CATALOGUE_FORMAT:
            raise LibraryError(f"library format {fmt} is newer than this imgret understands; upgrade imgret")
        have = recorded.get("model_fingerprint")
        if have is None or rebuild:
            if not self.writable:
                raise LibraryError(f"library {self.folder} has no model recorded; run `imgret index` first")
            if have is not None:  # --rebuild: start over with the new model
                self.catalogue.db.execute("DELETE FROM files")
                self.catalogue.db.execute("DELETE FROM meta WHERE key LIKE 'index_%'")
            self.catalogue.set_meta(**self._model_meta(), created=recorded.get("created", time.time()))
            self.catalogue.bump_generation()
            self.catalogue.commit()
            return
        if have != self.encoder.fingerprint:
            raise ModelMismatchError(
                f"library {self.folder} was built with model {recorded.get('model_ref')!r} "
                f"({recorded.get('model_id')}); it cannot be used with {self.model_ref!r}. "
                "Use `imgret index --rebuild` to re-embed everything with the new model, "
                "or another --index"
            )

    # -- writing ------------------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self.writable:
            raise LibraryError("library was opened read-only")

    def index(self, root: str | os.PathLike, **kwargs) -> IndexReport:
        """Bring the library up to date with the pictures under ``root``; see :mod:`imgret.runtime.indexer`."""
        from imgret.runtime.indexer import index_folder

        self._require_writable()
        report = index_folder(self, root, **kwargs)
        self._index = None
        return report

    def add(self, images: Iterable[str | os.PathLike]) -> IndexReport:
        """Add (or refresh) individual picture files."""
        from imgret.runtime.indexer import index_files

        self._require_writable()
        report = index_files(self, [os.path.abspath(os.fspath(p)) for p in images])
        self._index = None
        return report

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Forget the given files (the pictures themselves are not touched); returns how many were known."""
        self._require_writable()
        keys = []
        for p in paths:
            row = self.catalogue.lookup(os.path.abspath(os.fspath(p)))
            if row:
                keys.append(row.key)
        if keys:
            self.catalogue.delete(keys)
            self.catalogue.bump_generation()
            self.catalogue.commit()
            self.refresh_index()
        return len(keys)

    # -- index file ---------------------------------------------------------------------------------
    def _saved_record(self, *, fresh_only: bool = True) -> vectors.SavedIndex | None:
        """What the catalogue recorded about the index file; ``None`` when nothing (or, with
        ``fresh_only``, nothing for the current catalogue generation) was recorded."""
        m = self.catalogue.meta()
        if "index_sha256" not in m:
            return None
        if fresh_only and m.get("index_generation") != m.get("catalogue_generation"):
            return None
        return vectors.SavedIndex(int(m["index_count"]), m["index_sha256"], int(m["index_size"]))

    def refresh_index(self) -> str:
        """Make ``vectors.usearch`` match the catalogue: ``"fresh"`` (already did), ``"updated"`` (an
        older verified file brought up to date by removing and adding the changed vectors; building an
        HNSW graph from scratch takes minutes for 100,000 pictures) or ``"rebuilt"`` (from the catalogue)."""
        self._require_writable()
        path = str(self.folder / INDEX_FILE)
        record = self._saved_record()
        if record is not None:
            try:
                self._index = vectors.load_verified(path, record)
                return "fresh"
            except vectors.IndexDamaged:
                pass
        started = time.time()
        outcome, index = "rebuilt", None
        older = self._saved_record(fresh_only=False)
        built_at = self.catalogue.get_meta("index_built_at")
        if older is not None and built_at is not None:
            try:
                index = vectors.load_verified(path, older)
                if not self._apply_changes(index, float(built_at)):
                    index = None
                else:
                    outcome = "updated"
            except vectors.IndexDamaged:
                index = None
        if index is None:
            index = self._build_from_catalogue()
        saved = vectors.save_atomic(index, path)
        gen = self.catalogue.get_meta("catalogue_generation", "0")
        self.catalogue.set_meta(
            index_generation=gen, index_count=saved.count, index_sha256=saved.sha256, index_size=saved.size,
            index_built_at=repr(started),
        )
        self.catalogue.commit()
        self._index = index
        return outcome

    def _apply_changes(self, index, built_at: float) -> bool:
        """Bring ``index`` in line with the catalogue; False when a full rebuild is the better deal."""
        if index.ndim != self.encoder.dim:
            return False
        have = {int(k) for k in index.keys}
        want = self.catalogue.ok_keys()
        # A margin of a second covers rows written while the last build read the catalogue.
        changed = self.catalogue.keys_updated_since(built_at - 1.0) & want
        remove = (have - want) | (changed & have)
        add = sorted((want - have) | changed)
        if len(remove) + len(add) > max(1000, len(want) // 2):
            return False
        if remove:
            index.remove(np.fromiter(remove, dtype=np.uint64, count=len(remove)))
        if add:
            index.add(np.asarray(add, dtype=np.uint64), self.catalogue.vectors_of(add, self.encoder.dim))
        return len(index) == len(want)

    def _build_from_catalogue(self):
        keys, vecs = self.catalogue.all_vectors(self.encoder.dim)
        return vectors.build(keys, vecs, self.encoder.metric)

    def _search_index(self):
        if self._index is not None:
            return self._index
        record = self._saved_record()
        if record is not None:
            try:
                self._index = vectors.load_verified(str(self.folder / INDEX_FILE), record)
                return self._index
            except vectors.IndexDamaged:
                pass
        # Missing, stale or damaged: never search it; rebuild from the catalogue in memory.
        self._index = self._build_from_catalogue()
        return self._index

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.catalogue.counts().get("ok", 0)

    def query(
        self, images: Iterable[str | os.PathLike], n: int = 5, *, include_self: bool = False
    ) -> list[QueryResult]:
        """The ``n`` most similar library pictures for each query picture (path, PIL image or array).

        A path that is in the library and unchanged uses its stored vector; anything else is embedded.
        The query's own entry is left out unless ``include_self``.
        """
        if n < 1:
            raise ValueError("the number of results must be at least 1")
        index = self._search_index()
        results = []
        for source in images:
            label, vec, self_key = self._query_vector(source)
            found = vectors.search(index, vec[None, :], n + (0 if include_self else 1))[0]
            keys = [int(k) for k in found[0]]
            names = self.catalogue.paths(keys)
            hits = []
            for key, dist in zip(keys, found[1]):
                if key == self_key and not include_self:
                    continue
                if key not in names:  # removed since the index was built
                    continue
                d = float(max(dist, 0.0))
                if self.encoder.metric == "l2":
                    d = float(np.sqrt(d))
                hits.append(Hit(len(hits) + 1, names[key], d))
                if len(hits) == n:
                    break
            results.append(QueryResult(label, hits))
        return results

    def vectors_for(self, paths: list[str], *, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for many files: stored ones from the catalogue, the rest embedded in batches.

        Returns ``(vectors [N, D], ok [N] bool)``; unreadable files get a zero row and ``ok`` False.
        """
        from imgret.runtime.indexer import _prepared_stream

        out = np.zeros((len(paths), self.encoder.dim), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)
        missing: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            p = os.path.abspath(p)
            row = self.catalogue.lookup(p)
            vec = self.catalogue.vector(row.key) if row is not None and row.status == "ok" else None
            if vec is not None:
                out[i], ok[i] = vec, True
            else:
                missing.setdefault(p, []).append(i)
        pending: list[tuple[list[int], np.ndarray]] = []

        def flush() -> None:
            if pending:
                vecs = self.encoder.embed_arrays(np.stack([px for _, px in pending]))
                for (rows, _), vec in zip(pending, vecs):
                    out[rows], ok[rows] = vec, bool(np.all(np.isfinite(vec)))
                pending.clear()

        for prep in _prepared_stream(list(missing), self.encoder.size, workers):
            if prep.pixels is not None:
                pending.append((missing[prep.path], prep.pixels))
                if len(pending) >= 64:
                    flush()
        flush()
        return out, ok

    def _query_vector(self, source) -> tuple[str, np.ndarray, int | None]:
        if isinstance(source, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(source))
            row = self.catalogue.lookup(path)
            if row is not None and row.status == "ok":
                try:
                    st = os.stat(path)
                    unchanged = st.st_size == row.size and st.st_mtime_ns == row.mtime_ns
                except OSError:
                    unchanged = True  # vanished since indexing: the stored vector is still its picture
                if unchanged:
                    vec = self.catalogue.vector(row.key)
                    if vec is not None:
                        return os.fspath(source), vec, row.key
            pixels = imageio.load(path, self.encoder.size)
            return os.fspath(source), self.encoder.embed_arrays(pixels[None])[0], row.key if row else None
        vec = self.encoder.embed([source])[0]
        return "<image>", vec, None

    def info(self) -> dict[str, object]:
        """Library path, model, counts, sizes and last update, for ``imgret info``."""
        meta = self.catalogue.meta()
        counts = self.catalogue.counts()

        def size_of(name: str) -> int:
            try:
                return (self.folder / name).stat().st_size
            except OSError:
                return 0

        return {
            "library": str(self.folder),
            "model": meta.get("model_ref"),
            "model_id": meta.get("model_id"),
            "model_fingerprint": meta.get("model_fingerprint"),
            "metric": meta.get("metric"),
            "embedding_dim": int(meta.get("embedding_dim", 0)),
            "input_size": int(meta.get("input_size", 0)),
            "pictures": counts.get("ok", 0),
            "skipped": counts.get("skipped", 0),
            "skip_reasons": self.catalogue.skip_reasons(),
            "catalogue_bytes": size_of(CATALOGUE_FILE) + size_of(CATALOGUE_FILE + "-wal"),
            "index_bytes": size_of(INDEX_FILE),
            "index_fresh": self._saved_record() is not None,
            "created": float(meta["created"]) if "created" in meta else None,
            "updated": float(meta["updated"]) if "updated" in meta else None,
        }

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        """Close the catalogue and release the writer lock."""
        cat = getattr(self, "catalogue", None)
        if cat is not None:
            cat.close()
            self.catalogue = None
        self._release()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Hit", "ImageError", "IndexReport", "Library", "QueryResult", "default_library_dir"]
