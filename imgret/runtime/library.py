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
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from imgret.errors import ImageError, LibraryError, ModelMismatchError
from imgret.runtime import imageio, vectors
from imgret.runtime.catalogue import CATALOGUE_FORMAT, Catalogue
from imgret.runtime.encoder import Encoder
from imgret.runtime.index_file import IndexFile, saved_record
from imgret.runtime.libparts import Hit, IndexReport, QueryResult, WriterLock, default_library_dir
from imgret.runtime.modelinfo import RESIZE_RULE

CATALOGUE_FILE = "catalogue.sqlite"
INDEX_FILE = "vectors.usearch"
LOCK_FILE = "lock"


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
        self._lock: WriterLock | None = None
        self._file: IndexFile | None = None
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
            self._lock = WriterLock(self.folder / LOCK_FILE)
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
            self._file = IndexFile(self.catalogue, str(self.folder / INDEX_FILE), encoder.dim, encoder.metric)
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
        return index_folder(self, root, **kwargs)  # it leaves the refreshed index loaded

    def add(self, images: Iterable[str | os.PathLike]) -> IndexReport:
        """Add (or refresh) individual picture files."""
        from imgret.runtime.indexer import index_files

        self._require_writable()
        return index_files(self, [os.path.abspath(os.fspath(p)) for p in images])

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
    @property
    def _index(self):
        return self._file.index if self._file is not None else None

    @_index.setter
    def _index(self, value) -> None:
        if self._file is not None:
            self._file.index = value

    def refresh_index(self) -> str:
        """Make ``vectors.usearch`` match the catalogue; see :meth:`IndexFile.refresh`."""
        self._require_writable()
        return self._file.refresh()

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
        index = self._file.searchable()
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
            "index_fresh": saved_record(meta) is not None,
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
