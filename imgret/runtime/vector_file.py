"""The library's ``vectors.usearch`` kept in step with the catalogue.

The file is an accelerator derived from the catalogue. After an index run it is brought up to date
by removing and adding only the changed vectors (building an HNSW graph from scratch takes minutes
for 100,000 pictures on a small CPU); when it is missing, stale or fails its checksum it is never
searched, and is rebuilt from the catalogue.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from imgret.runtime import vectors
from imgret.runtime.catalogue import Catalogue


def saved_record(meta: dict[str, str], *, fresh_only: bool = True) -> vectors.SavedIndex | None:
    """What the catalogue's ``meta`` records about the index file; ``None`` when nothing (or, with
    ``fresh_only``, nothing for the current catalogue generation) was recorded."""
    if "index_sha256" not in meta:
        return None
    if fresh_only and meta.get("index_generation") != meta.get("catalogue_generation"):
        return None
    return vectors.SavedIndex(int(meta["index_count"]), meta["index_sha256"], int(meta["index_size"]))


def file_matches(path: str, record: vectors.SavedIndex | None) -> bool:
    """Whether the file at ``path`` is the one ``record`` describes (same size and checksum)."""
    if record is None:
        return False
    try:
        if os.path.getsize(path) != record.size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == record.sha256
    except OSError:
        return False


class VectorFile:
    """One library's ``vectors.usearch``: ``refresh`` after writing, ``searchable`` for queries."""

    def __init__(self, catalogue: Catalogue, path: str, dim: int, metric: str) -> None:
        self.catalogue, self.path, self.dim, self.metric = catalogue, path, dim, metric
        self.index = None  # the loaded or built usearch index, cached

    def forget(self) -> None:
        """Drop the cached index (the catalogue changed)."""
        self.index = None

    def record(self, *, fresh_only: bool = True) -> vectors.SavedIndex | None:
        """What the catalogue records about this file (see :func:`saved_record`)."""
        return saved_record(self.catalogue.meta(), fresh_only=fresh_only)

    def refresh(self) -> str:
        """Make the file match the catalogue: ``"fresh"`` (it already did), ``"updated"`` (an older
        verified file brought up to date) or ``"rebuilt"`` (from the catalogue). Needs the writer lock."""
        record = self.record()
        if record is not None:
            try:
                self.index = vectors.load_verified(self.path, record)
                return "fresh"
            except vectors.IndexDamaged:
                pass
        started = time.time()
        outcome, index = "rebuilt", None
        older = self.record(fresh_only=False)
        built_at = self.catalogue.get_meta("index_built_at")
        if older is not None and built_at is not None:
            try:
                index = vectors.load_verified(self.path, older)
                if self._apply_changes(index, float(built_at)):
                    outcome = "updated"
                else:
                    index = None
            except vectors.IndexDamaged:
                index = None
        if index is None:
            index = self.build()
        saved = vectors.save_atomic(index, self.path)
        gen = self.catalogue.get_meta("catalogue_generation", "0")
        self.catalogue.set_meta(
            index_generation=gen, index_count=saved.count, index_sha256=saved.sha256, index_size=saved.size,
            index_built_at=repr(started),
        )
        self.catalogue.commit()
        self.index = index
        return outcome

    def _apply_changes(self, index, built_at: float) -> bool:
        """Bring ``index`` in line with the catalogue; False when a full rebuild is the better deal."""
        if index.ndim != self.dim:
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
            index.add(np.asarray(add, dtype=np.uint64), self.catalogue.vectors_of(add, self.dim))
        return len(index) == len(want)

    def build(self):
        """A new in-memory index of every vector in the catalogue."""
        keys, vecs = self.catalogue.all_vectors(self.dim)
        return vectors.build(keys, vecs, self.metric)

    def searchable(self):
        """The index to search: the verified file for the current generation, else one built in memory
        from the catalogue (a reader never writes; the next ``index`` run repairs the file)."""
        if self.index is not None:
            return self.index
        record = self.record()
        if record is not None:
            try:
                self.index = vectors.load_verified(self.path, record)
                return self.index
            except vectors.IndexDamaged:
                pass
        self.index = self.build()
        return self.index
