"""Looking after a library: a full check of every file in it, and re-pointing it at moved pictures.

Neither loads the model's session nor reads a picture. ``check_library`` is the thorough check that
everyday reads skip to stay fast (SQLite's ``integrity_check``, the whole vector file's checksum, the
model copy's fingerprint); ``relocate_library`` rewrites the recorded folder of pictures that moved.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from imgret.errors import LibraryError
from imgret.runtime import vectors
from imgret.runtime.catalogue import RECOVERY, Catalogue, damaged
from imgret.runtime.fileio import file_sha256
from imgret.runtime.library import CATALOGUE_FILE, library_folder, open_catalogue, take_lock
from imgret.runtime.vector_file import VectorFile

VECTOR_PROBLEM = "the vector file"  # how a problem of the vector file itself starts


def check_library(folder: str | os.PathLike | None = None) -> dict[str, object]:
    """Check everything in a library; returns what was checked, raises :class:`LibraryError` naming
    every problem found (and what to do) in one message."""
    folder = library_folder(folder)
    catalogue = open_catalogue(folder)
    try:
        result = catalogue.integrity_check()
        if result != "ok":
            raise LibraryError(f"catalogue {folder / CATALOGUE_FILE} is damaged ({result}); {RECOVERY}")
        meta = catalogue.meta()
        problems = _model_problems(folder, meta) + _vector_problems(folder, catalogue, meta)
        facts = {"library": str(folder), "pictures": catalogue.counts().get("ok", 0),
                 "pending_vectors": catalogue.pending_count() if catalogue.format != 1 else 0}
    except sqlite3.DatabaseError as exc:
        raise damaged(str(folder / CATALOGUE_FILE), exc) from exc
    finally:
        catalogue.close()
    if problems:
        if any(p.startswith(VECTOR_PROBLEM) for p in problems):
            _rebuild_next_time(folder)
        raise LibraryError("; ".join(problems))
    return facts


def _rebuild_next_time(folder: Path) -> None:
    """Have the next writer check the whole vector file (as after an unclean exit), so that damage
    only this full check saw (the middle of a large file, which a writer's everyday check of its
    head and tail passes) is rebuilt by the next ``imgret index``. Skipped while a writer runs."""
    try:
        with _writing(folder) as catalogue:
            catalogue.set_meta(writer="open")
    except (LibraryError, OSError):  # a writer is running, or the folder is read-only
        pass
    except sqlite3.DatabaseError:
        pass  # a damaged catalogue is reported on its own


@contextlib.contextmanager
def _writing(folder: Path) -> Iterator[Catalogue]:
    """The library's catalogue under its writer lock, committed when the block ends without error."""
    lock = take_lock(folder)
    try:
        catalogue = Catalogue(str(folder / CATALOGUE_FILE))
        try:
            yield catalogue
            catalogue.commit()
        finally:
            catalogue.close()
    finally:
        lock.release()


def _model_problems(folder: Path, meta: dict[str, str]) -> list[str]:
    copy = meta.get("model_file")
    if not copy:
        return []
    path = folder / copy
    if not path.is_file():
        return [f"the library's model copy {copy} is missing; index again with --model and the same model"]
    if file_sha256(path) != meta.get("model_fingerprint"):
        return [f"the library's model copy {copy} does not match its fingerprint; "
                "index again with --model and the same model"]
    return []


def _vector_problems(folder: Path, catalogue: Catalogue, meta: dict[str, str]) -> list[str]:
    vector_file = VectorFile(catalogue, str(folder), int(meta.get("embedding_dim", 0)), meta.get("metric", "cosine"))
    rec = vector_file.record()
    if rec is None:
        return []
    name, saved = rec
    fix = "run `imgret index FOLDER` to rebuild it (its pictures are read again)"  # see _rebuild_next_time
    try:
        vectors.verify(vector_file.path(name), saved, full=True)
        index = vectors.open_view(vector_file.path(name), saved, vector_file.dim)
    except vectors.IndexDamaged as exc:
        return [f"{VECTOR_PROBLEM} {name} is damaged ({exc}); {fix}"]
    want = vector_file.dtype
    if vectors.index_dtype(index) != want:
        return [f"{VECTOR_PROBLEM} {name} stores {vectors.index_dtype(index)} vectors, the catalogue records {want}; {fix}"]
    if catalogue.format == 1:
        return []
    missing = np.setdiff1d(catalogue.settled_keys(), np.asarray(index.keys, dtype=np.uint64))
    if len(missing):
        return [f"{VECTOR_PROBLEM} {name} lacks {len(missing)} pictures' vectors; {fix}"]
    return _slot_problems(vector_file, name)


def _slot_problems(vector_file: VectorFile, name: str) -> list[str]:
    """Whether the vector file's key → slot table (if recorded) is sound and says what the file says."""
    from imgret.runtime import slot_file

    recorded = vector_file.slots_record()
    if recorded is None:
        return []
    table = slot_file.name_for(name)
    try:
        slot_file.verify(vector_file.path(table), recorded)
        if not slot_file.table_matches(vector_file.path(name), vector_file.path(table)):
            raise vectors.IndexDamaged("it does not give the slots the vector file holds")
    except vectors.IndexDamaged as exc:
        return [f"the vector file's slot table {table} is damaged ({exc}); queries read the vector file "
                "without it until `imgret index FOLDER` writes it again (no picture is read again)"]
    return []


def relocate_library(folder: str | os.PathLike | None, old: str | os.PathLike, new: str | os.PathLike) -> int:
    """Re-point the library from pictures under folder ``old`` to the same pictures under ``new``
    (after moving or copying them); returns how many recorded folders or files moved. Nothing is
    read from the pictures: the next ``index`` finds them unchanged."""
    folder = library_folder(folder)
    if not (folder / CATALOGUE_FILE).is_file():
        open_catalogue(folder)  # raises the usual "no library" error
    with _writing(folder) as catalogue:
        return catalogue.relocate(os.path.abspath(os.fspath(old)), os.path.abspath(os.fspath(new)))
