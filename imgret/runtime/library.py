"""A library: a folder holding the catalogue, the vector file, its own model and a writer lock.

Layout of a library folder::

    catalogue.sqlite   source of truth: files (paths relative to the indexed folders), skip reasons,
                       pending vectors, the model's fingerprint, the vector file's record (SQLite, WAL)
    vectors-N.usearch  the settled vectors, searched memory-mapped; its name and checksums are in
                       the catalogue (``vector_file.py``)
    model.onnx         a copy of a custom encoder (a bundled one is recorded by name), checked by
                       fingerprint on every open, so the library does not depend on the original file
    lock               held (flock) by the one process allowed to write

This module keeps only the folder's life: open it for reading (:meth:`Library.open`), for writing
(:meth:`Library.open_writable`), or read its facts without a model (:func:`library_info`).
The work is done by :class:`~imgret.runtime.indexer.Indexer` and :mod:`imgret.runtime.search`.
Readers never take the lock: they read the last committed state. A second writer fails at once
with :class:`~imgret.errors.LibraryLockedError`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imgret.errors import LibraryError, ModelError, ModelMismatchError
from imgret.runtime import atomic, copies, search, vectors
from imgret.runtime.catalogue import CATALOGUE_FORMAT, Catalogue, damaged
from imgret.runtime.encoder import Encoder
from imgret.runtime.fileio import file_sha256
from imgret.runtime.location import default_library_dir
from imgret.runtime.lock import WriterLock
from imgret.runtime.modelinfo import RESIZE_RULE
from imgret.runtime.results import Hit, IndexReport, QueryResult
from imgret.runtime.vector_file import DTYPE_KEY, VectorFile, stored_dtype

if TYPE_CHECKING:
    from imgret.runtime.indexer import Indexer

CATALOGUE_FILE = "catalogue.sqlite"
MODEL_FILE = "model.onnx"
LOCK_FILE = "lock"
PathLike = str | os.PathLike


class Library:
    """Pictures indexed by one encoder; add, remove and query them.

    Open one with :meth:`open` (read-only) or :meth:`open_writable` (created if missing); both take a
    folder (default: :func:`~imgret.runtime.location.default_library_dir`) and a ``model`` (a bundled
    name or .onnx path; default: the model the library was built with, or the bundled default for a
    new library). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, folder: Path, catalogue: Catalogue, encoder: Encoder, *, lock: WriterLock | None) -> None:
        """Assemble an opened library from its parts; use :meth:`open` or :meth:`open_writable`."""
        self.folder, self.catalogue, self.encoder, self._lock = folder, catalogue, encoder, lock
        self.model_ref = encoder.name
        self.vector_file = VectorFile(catalogue, str(folder), encoder.dim, encoder.metric)

    @classmethod
    def open(cls, folder: PathLike | None = None, *, model: PathLike | None = None,
             threads: int | None = None, one_shot: bool = False) -> Library:
        """Open an existing library for queries with its own model; ``model`` (if given) must be the
        same model (same fingerprint).

        ``one_shot``: this process makes one :meth:`query` call and embeds nothing after it (the
        ``imgret query`` command). A query whose pictures are all in the library then never imports
        onnxruntime (usearch must otherwise load after it: loaded first, it makes a later onnxruntime
        import crash the process, so an embedding after the search is refused with a
        :class:`~imgret.errors.ModelError` instead)."""
        folder = library_folder(folder)
        if not (folder / CATALOGUE_FILE).is_file():
            open_catalogue(folder)  # the usual "no library" error, before a model is loaded
        encoder = _encoder(model, threads) if model is not None else None  # a bad model fails before anything
        catalogue = open_catalogue(folder)
        try:
            recorded = catalogue.meta()
            _check_format(recorded)
            if "model_fingerprint" not in recorded:
                raise LibraryError(f"library {folder} has no model recorded; run `imgret index` first")
            encoder = encoder or _own_encoder(folder, recorded, threads, checked=True)
            _check_same_model(folder, recorded, encoder)
        except sqlite3.DatabaseError as exc:
            catalogue.close()
            raise damaged(str(folder / CATALOGUE_FILE), exc) from exc
        except BaseException:
            catalogue.close()
            raise
        lib = cls(folder, catalogue, encoder, lock=None)
        lib.vector_file.onnxruntime_first = not one_shot
        lib.vector_file.own_reader = one_shot
        return lib

    @classmethod
    def open_writable(cls, folder: PathLike | None = None, *, model: PathLike | None = None,
                      rebuild: bool = False, threads: int | None = None, dtype: str | None = None) -> Library:
        """Open a library for writing, creating the folder if missing, and hold its writer lock.

        A format-1 library is upgraded in place first (one transaction). ``rebuild`` forgets every
        picture and starts over with ``model``; otherwise a library built with another model is refused
        with :class:`~imgret.errors.ModelMismatchError`. A custom model is copied into the library.
        ``dtype`` (``f32``, ``f16``, ``i8``; default ``f32``) is how a new library's vector file stores
        vectors; an existing library keeps its own, and another one is refused unless ``rebuild``.
        """
        folder = library_folder(folder)
        cat_path = folder / CATALOGUE_FILE
        new = not cat_path.is_file()
        encoder = _encoder(model, threads) if new else None  # a bad model fails before anything
        given = _model_file(model) if model is not None and not new else None  # a missing one too
        lock = take_lock(folder)
        try:
            from imgret.runtime.indexer import fault_point  # the write path only: a reader never loads it

            catalogue = Catalogue(str(cat_path), fault=fault_point)
        except BaseException:
            lock.release()
            raise
        try:
            recorded = catalogue.meta()
            _check_format(recorded)
            encoder = encoder or _writer_encoder(folder, recorded, given, threads, rebuild=rebuild)
            if "model_fingerprint" in recorded and not rebuild:
                _check_same_model(folder, recorded, encoder)
                _check_same_dtype(folder, recorded, dtype)
            else:
                _record_model(catalogue, recorded, encoder, forget=rebuild,
                              dtype=dtype or stored_dtype(recorded))
            _keep_model(folder, catalogue, encoder)
            unclean = catalogue.get_meta("writer") == "open"
            catalogue.set_meta(writer="open")
            catalogue.commit()
        except BaseException:
            catalogue.close()
            lock.release()
            raise
        lib = cls(folder, catalogue, encoder, lock=lock)
        lib.vector_file.full_check = unclean  # the last writer died: check the whole vector file
        lib.vector_file.remove_unused()  # files a killed writer left: temporary or never recorded
        return lib

    @property
    def writable(self) -> bool:
        """Whether this process holds the writer lock."""
        return self._lock is not None

    def _require_writable(self) -> None:
        if not self.writable:
            raise LibraryError("library was opened read-only; use Library.open_writable")

    def _indexer(self) -> Indexer:
        from imgret.runtime.indexer import Indexer

        self._require_writable()
        return Indexer(self.catalogue, self.encoder, self.vector_file, exclude=(str(self.folder),))

    def index(self, root: PathLike, **kwargs) -> IndexReport:
        """Bring the library up to date with the pictures under ``root``; see :meth:`Indexer.index_folder`."""
        return self._indexer().index_folder(root, **kwargs)

    def add(self, images: Iterable[PathLike]) -> IndexReport:
        """Add (or refresh) individual picture files."""
        return self._indexer().index_files(images)

    def remove(self, paths: Iterable[PathLike]) -> int:
        """Forget the given files (the pictures themselves are not touched); returns how many were known."""
        return self._indexer().remove(paths)

    def refresh_index(self) -> str:
        """Make ``vectors.usearch`` match the catalogue; see :meth:`VectorFile.refresh`."""
        self._require_writable()
        return self.vector_file.refresh()

    def __len__(self) -> int:
        return self.catalogue.counts().get("ok", 0)

    def query(self, images: Iterable, n: int = 5, *, include_self: bool = False, fold: bool = True,
              exclude_copies: bool = False) -> list[QueryResult]:
        """The ``n`` most similar library pictures for each query picture (path, PIL image or array).

        A path that is in the library and unchanged uses its stored vector; anything else is embedded.
        The query's own entry is left out unless ``include_self``; its copies too with
        ``exclude_copies``. With ``fold`` (the default) the ``n`` hits are distinct pictures: a hit
        within the model's copy threshold of a better one is listed in that hit's ``copies``. A query
        picture that cannot be read gets a result with no hits and its ``error``; the others are
        still answered.
        """
        threshold = copies.copy_rule(self.encoder).threshold if fold or exclude_copies else None
        try:
            return search.query(self.vector_file, self.encoder, images, n, include_self=include_self,
                                copy_threshold=threshold, fold=fold, exclude_copies=exclude_copies)
        except sqlite3.DatabaseError as exc:  # damage a query touched: never answered from it
            raise damaged(self.catalogue.path, exc) from exc

    def duplicates(self, **kwargs) -> copies.Duplicates:
        """Groups of copies in the library; see :func:`imgret.runtime.copies.duplicates`."""
        return copies.duplicates(self.vector_file, self.encoder, **kwargs)

    def vectors_for(self, paths: list[str], *, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors for many files; see :func:`imgret.runtime.search.vectors_for`."""
        return search.vectors_for(self.catalogue, self.encoder, paths, workers=workers)

    def info(self) -> dict[str, object]:
        """This library's facts; see :func:`library_info`."""
        return _info(self.folder, self.catalogue)

    def close(self) -> None:
        """Close the catalogue (a writer marks its clean exit) and release the writer lock."""
        if self.catalogue is not None:
            self.vector_file.forget()
            if self._lock is not None:
                self.catalogue.rollback()
                self.catalogue.set_meta(writer="closed")
                self.catalogue.commit()
            self.catalogue.close()
            self.catalogue = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def library_info(folder: PathLike | None = None) -> dict[str, object]:
    """Library path, model, counts, sizes, vector-file freshness and last update (``imgret info``).

    Reads the catalogue only; no model is loaded.
    """
    folder = library_folder(folder)
    catalogue = open_catalogue(folder)
    try:
        if catalogue.get_meta("model_fingerprint") is None:
            raise LibraryError(f"library {folder} has no model recorded; run `imgret index` first")
        return _info(folder, catalogue)
    except sqlite3.DatabaseError as exc:
        raise damaged(str(folder / CATALOGUE_FILE), exc) from exc
    finally:
        catalogue.close()


def open_catalogue(folder: Path) -> Catalogue:
    """The catalogue of the library in ``folder``, read-only; a clear error when there is none."""
    cat_path = folder / CATALOGUE_FILE
    if not cat_path.is_file():
        raise LibraryError(
            f"no library at {folder}: run `imgret index FOLDER` first (or pass --library / IMGRET_LIBRARY)"
        )
    return Catalogue(str(cat_path), readonly=True)


def _info(folder: Path, catalogue: Catalogue) -> dict[str, object]:
    meta = catalogue.meta()
    counts = catalogue.counts()
    vector_file = VectorFile(catalogue, str(folder), int(meta.get("embedding_dim", 0)), meta.get("metric", "cosine"))
    rec = vector_file.record()

    def size_of(name: str) -> int:
        try:
            return (folder / name).stat().st_size
        except OSError:
            return 0

    return {
        "library": str(folder),
        "format": catalogue.format,
        "model": meta.get("model_ref"),
        "model_id": meta.get("model_id"),
        "model_fingerprint": meta.get("model_fingerprint"),
        "model_file": meta.get("model_file"),
        "metric": meta.get("metric"),
        "embedding_dim": int(meta.get("embedding_dim", 0)),
        "vector_dtype": stored_dtype(meta),
        "input_size": int(meta.get("input_size", 0)),
        "folders": catalogue.root_folders(),
        "pictures": counts.get("ok", 0),
        "skipped": counts.get("skipped", 0),
        "skip_reasons": catalogue.skip_reasons(),
        "pending_vectors": catalogue.pending_count() if catalogue.format != 1 else 0,
        "catalogue_bytes": size_of(CATALOGUE_FILE) + size_of(CATALOGUE_FILE + "-wal"),
        "index_bytes": size_of(rec[0]) if rec else 0,
        # Fresh: the recorded file passes the reader's check and no vector is waiting to go in.
        "index_fresh": vector_file.is_fresh(),
        "created": float(meta["created"]) if "created" in meta else None,
        "updated": float(meta["updated"]) if "updated" in meta else None,
    }


def library_folder(folder: PathLike | None) -> Path:
    """The library folder asked for, or the per-user default."""
    return Path(folder) if folder is not None else default_library_dir()


def _encoder(model: PathLike | None, threads: int | None) -> Encoder:
    """A model named by ``--model`` (or the bundled default), loaded and checked in full."""
    ref, path = _model_file(model)
    return Encoder(path, threads=threads, name=ref)


def _model_file(model: PathLike) -> tuple[str, Path]:
    """``(name, file)`` of a ``--model`` value, without loading it."""
    from imgret import models

    ref, path = models.resolve(model)
    return ref, Path(path)


def _writer_encoder(folder: Path, recorded: dict[str, str], given: tuple[str, Path] | None,
                    threads: int | None, *, rebuild: bool) -> Encoder:
    """A writer's model: ``given`` (``--model``) or the library's own.

    A file with the fingerprint the library recorded passed every check when it was recorded: only its
    metadata is read now, and onnxruntime opens it when a picture must first be embedded (see
    :class:`Encoder`), so a run with nothing to embed never starts a session. Any other model is loaded
    and checked in full now, to be recorded (``rebuild``) or refused as a mismatch.
    """
    if given is not None:
        ref, path = given
        checked = None if rebuild else recorded.get("model_fingerprint")
        return Encoder(path, threads=threads, name=ref, checked_fingerprint=checked)
    return _own_encoder(folder, recorded, threads, checked=not rebuild)


def _own_copy(folder: Path, recorded: dict[str, str]) -> Path | None:
    """The library's copy of its custom model, checked against the fingerprint recorded (before
    onnxruntime sees it); ``None`` when the library names a bundled model instead."""
    copy = recorded.get("model_file")
    if not copy:
        return None
    path = folder / copy
    if not path.is_file():
        raise LibraryError(f"library {folder} has lost its copy of its model ({copy}); "
                           "index again with `--model FILE.onnx` (the same model) to restore it")
    if file_sha256(path) != recorded.get("model_fingerprint"):
        raise LibraryError(f"library {folder}: its copy of its model ({copy}) does not match the "
                           "fingerprint recorded (damaged?); index again with `--model FILE.onnx` "
                           "(the same model) to restore it")
    return path


def _own_encoder(folder: Path, recorded: dict[str, str], threads: int | None, *, checked: bool = False) -> Encoder:
    """The library's own model: its copy in the folder, else the bundled model it names. ``checked``:
    a file with the recorded fingerprint is opened by its metadata alone (see :class:`Encoder`)."""
    fingerprint = recorded.get("model_fingerprint") if checked else None
    copy = _own_copy(folder, recorded)
    if copy:
        return Encoder(copy, threads=threads, name=recorded.get("model_ref"), checked_fingerprint=fingerprint)
    ref, path = _named_model(recorded)
    return _explained(lambda: Encoder(path, threads=threads, name=ref, checked_fingerprint=fingerprint))


def _named_model(recorded: dict[str, str]) -> tuple[str, Path]:
    """``(name, file)`` of the model a library names (a bundled one, or a format-1 library's path)."""
    return _explained(lambda: _model_file(recorded.get("model_ref") or None))


def _explained(step):
    """``step()``, its :class:`ModelError` told in terms of a format-1 library that named its model by path."""
    try:
        return step()
    except ModelError as exc:  # a format-1 library that named a model file which has since moved
        raise ModelError(f"{exc}; this library names its model by path: pass --model with the same model "
                         "to an `imgret index` run, which keeps a copy in the library") from exc


def _keep_model(folder: Path, catalogue: Catalogue, encoder: Encoder) -> None:
    """Give the library its own verified copy of a custom model (a bundled one is kept by name)."""
    from imgret import models

    if models.is_bundled(encoder.path):
        return
    target = folder / MODEL_FILE
    if catalogue.get_meta("model_file") == MODEL_FILE and target.is_file() and encoder.path.resolve() == target.resolve():
        return
    import shutil  # the write path only

    with open(encoder.path, "rb") as src:
        atomic.write_with(target, lambda fh: shutil.copyfileobj(src, fh, 1 << 20))
    if file_sha256(target) != encoder.fingerprint:
        raise ModelError(f"the copy of {encoder.path} in the library does not match it (changed while copying?)")
    ref = encoder.name if catalogue.get_meta("model_file") is None else catalogue.get_meta("model_ref")
    catalogue.set_meta(model_file=MODEL_FILE, model_ref=ref)


def take_lock(folder: Path) -> WriterLock:
    """The writer lock of the library in ``folder`` (created if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LibraryError(f"cannot create library folder {folder}: {exc.strerror}") from exc
    if not folder.is_dir():
        raise LibraryError(f"library path {folder} is not a folder")
    return WriterLock(folder / LOCK_FILE)


def _check_format(recorded: dict[str, str]) -> None:
    fmt = recorded.get("format_version")
    if fmt is not None and int(fmt) > CATALOGUE_FORMAT:
        raise LibraryError(f"library format {fmt} is newer than this imgret understands; upgrade imgret")


def _check_same_model(folder: Path, recorded: dict[str, str], encoder: Encoder) -> None:
    if recorded.get("model_fingerprint") != encoder.fingerprint:
        raise ModelMismatchError(
            f"library {folder} was built with model {recorded.get('model_ref')!r} "
            f"({recorded.get('model_id')}); it cannot be used with {encoder.name!r}. "
            "Use `imgret index --rebuild` to re-embed everything with the new model, "
            "or another --library"
        )


def _check_same_dtype(folder: Path, recorded: dict[str, str], dtype: str | None) -> None:
    """Refuse another vector type than the library's: its file holds every settled vector in its own
    type, and converting down (f32 to f16) would be possible but up (i8 to f32) never exact, so a
    change means embedding every picture again, which ``--rebuild`` does."""
    have = stored_dtype(recorded)
    if dtype is not None and dtype != have:
        raise LibraryError(
            f"library {folder} stores its vectors as {have}; --dtype {dtype} is chosen when a library is "
            f"made. Use `imgret index --rebuild --dtype {dtype}` to embed every picture again into {dtype}, "
            "or another --library"
        )


def _record_model(catalogue: Catalogue, recorded: dict[str, str], encoder: Encoder, *, forget: bool,
                  dtype: str) -> None:
    """Tie a new (or, with ``forget``, an emptied) library to ``encoder`` and its vectors to ``dtype``."""
    problem = vectors.dtype_problem(dtype, encoder.metric)
    if problem:
        raise LibraryError(f"cannot store this library's vectors as {dtype}: {problem}")
    if forget and "model_fingerprint" in recorded:  # --rebuild: start over with the new model
        catalogue.forget_all()
    catalogue.drop_meta("model_file")  # _keep_model records the copy of a custom model again
    info = encoder.info
    catalogue.set_meta(
        format_version=CATALOGUE_FORMAT, model_ref=encoder.name, model_id=info.model_id,
        model_fingerprint=encoder.fingerprint, input_size=info.input_size, resize=RESIZE_RULE,
        embedding_dim=info.embedding_dim, metric=info.metric, created=recorded.get("created", time.time()),
        **{DTYPE_KEY: dtype},
    )
    catalogue.dirty = True  # a new model is a change readers must see
    catalogue.commit()


__all__ = ["Hit", "IndexReport", "Library", "QueryResult", "default_library_dir", "library_info"]
