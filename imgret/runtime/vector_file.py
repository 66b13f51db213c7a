"""The library's vector file kept in step with the catalogue.

Every settled vector lives in one usearch file, ``vectors-N.usearch``, named in the catalogue's meta
with its checksums (``vectors.py``). A vector embedded since is *pending*: committed in the catalogue,
searched beside the file from memory. A refresh writes a new file (new name, so readers and a crash
keep the old one), then in one catalogue transaction records it and clears the pending vectors; old
files are removed after. Small change sets stay pending (up to :data:`MAX_PENDING`, or 2% of the file)
so adding 100 pictures to a million does not rewrite 700 MB.

A reader maps the file after a cheap check and never searches a file that fails it. Beside each file
the writer records its key → slot table (``vectors-N.slots.npy``, :mod:`imgret.runtime.slot_file`) in
the same transaction, so a reader finds stored vectors without usearch's key table (and opens the
view without one); a library whose file has none (older code) is read through usearch's key table and
gets one on its next write, as does one whose table fails its check. A writer checks
the file (whole, after an unclean shutdown) before a run: if it is damaged, the pictures whose vectors
were only there are marked for embedding again, and the run re-reads them.
"""

from __future__ import annotations

import os

import numpy as np

from imgret.errors import LibraryError
from imgret.runtime import slot_file, vectors
from imgret.runtime.catalogue import Catalogue

MAX_PENDING = 2000
# A process that makes at most this many searches and ends (Library.open(one_shot=True)) searches the
# file with imgret's own reader, without usearch: ~15 ms a search at 1M pictures against ~0.25 s to
# import usearch and open its view (benchmarks/README.md, "Cold query, round 3").
OWN_READER_SEARCHES = 8
PENDING_SHARE = 50  # ... or one in this many of the file's vectors, whichever is fewer
INDEX_META = ("index_file", "index_count", "index_sha256", "index_size", "index_sample", "index_dead",
              "index_generation", "index_slots_sha256", "index_slots_size")
LEGACY_FILE = "vectors.usearch"  # format 1
DTYPE_KEY = "vector_dtype"  # catalogue meta: the library's vector type, fixed when it is made


def stored_dtype(meta: dict[str, str]) -> str:
    """How a library's vector file stores vectors, from its catalogue's meta (made before the
    choice existed: f32)."""
    return meta.get(DTYPE_KEY, vectors.DEFAULT_DTYPE)


class VectorFile:
    """One library's vector file: ``searchable`` for queries, ``ensure_sound`` and ``refresh`` for writers.

    ``io`` is the module that reads and writes files (:mod:`imgret.runtime.vectors`); tests pass a
    counting stand-in to prove what is (not) read or written.
    """

    def __init__(self, catalogue: Catalogue, folder: str, dim: int, metric: str, io=vectors) -> None:
        self.catalogue, self.folder, self.dim, self.metric, self.io = catalogue, folder, dim, metric, io
        self.dtype = stored_dtype(catalogue.meta())  # how this library's vector file stores vectors
        self.full_check = False  # set after an unclean shutdown: check the whole file once
        # False: this process embeds nothing after it searches (a one-shot CLI query), so usearch may
        # load without onnxruntime (see vectors.usearch_index_class)
        self.onnxruntime_first = True
        # True: that process may search with imgret's own reader (graph_file) when it searches little
        self.own_reader = False
        self._searchable: vectors.Searchable | None = None
        self._stored: tuple[str, slot_file.StoredVectors | None] | None = None  # (file name, table)
        self._searched_name: str | None = None  # the file the open searchable maps
        catalogue.vector_store = self.settled_vector

    # -- what the catalogue records -----------------------------------------------------------------
    def record(self, meta: dict[str, str] | None = None) -> tuple[str, vectors.SavedIndex] | None:
        """``(file name, checksum record)`` of the recorded vector file, or ``None``."""
        meta = self.catalogue.meta() if meta is None else meta
        if self.catalogue.format == 1:  # format 1: one file, valid only for its generation
            if "index_sha256" not in meta or meta.get("index_generation") != meta.get("catalogue_generation"):
                return None
            return LEGACY_FILE, vectors.SavedIndex(int(meta["index_count"]), meta["index_sha256"],
                                                   int(meta["index_size"]))
        if "index_file" not in meta:
            return None
        return meta["index_file"], vectors.SavedIndex(int(meta["index_count"]), meta["index_sha256"],
                                                      int(meta["index_size"]), meta.get("index_sample", ""))

    def slots_record(self, meta: dict[str, str] | None = None) -> slot_file.SavedSlots | None:
        """The checksum record of the recorded vector file's slot table, or ``None`` (none written)."""
        meta = self.catalogue.meta() if meta is None else meta
        if self.catalogue.format == 1 or "index_slots_sha256" not in meta:
            return None
        return slot_file.SavedSlots(meta["index_slots_sha256"], int(meta["index_slots_size"]))

    def path(self, name: str = LEGACY_FILE) -> str:
        """Where a vector file of this library lives."""
        return os.path.join(self.folder, name)

    def forget(self) -> None:
        """Drop the cached view (the catalogue changed)."""
        if self._searchable is not None:
            self._searchable.close()
        self._searchable = None
        self._drop_stored()

    def is_fresh(self) -> bool:
        """Whether the recorded file passes the reader's check and nothing is pending."""
        rec = self.record()
        if rec is None:
            return False
        try:
            self.io.verify(self.path(rec[0]), rec[1], full=False)
        except vectors.IndexDamaged:
            return False
        return self.catalogue.format != 1 and self.catalogue.pending_count() == 0

    # -- reading ------------------------------------------------------------------------------------
    def searchable(self, searches: int | None = None) -> vectors.Searchable:
        """The file (mapped, checked) plus the pending vectors; raises :class:`LibraryError` for a
        damaged file rather than search it. ``searches``: how many queries the caller will make, when
        it knows; few, in a process with :attr:`own_reader`, and the file is searched without usearch
        (when it has a sound slot table, which says its layout is the one imgret reads)."""
        if self._searchable is None:
            self._searchable = self._open_searchable(own=self.reads_itself(searches))
        return self._searchable

    def reads_itself(self, searches: int | None) -> bool:
        """Whether ``searches`` searches in this process go through imgret's own reader."""
        return (self.own_reader and searches is not None and searches <= OWN_READER_SEARCHES
                and self.catalogue.format != 1)

    def stored(self) -> slot_file.StoredVectors | None:
        """The recorded file's vectors by key through its slot table, without usearch; ``None`` when
        it has no table (older code, format 1) or the table fails its check (usearch's key table
        answers then: the table only saves time, and the next write makes a new one)."""
        if self._stored is None:  # cached like the view: forget() drops both when the catalogue changes
            meta = self.catalogue.meta()
            rec = self.record(meta)
            if rec is None:
                return None
            self._stored = (rec[0], self._open_stored(rec, self.slots_record(meta)))
        return self._stored[1]

    def _open_stored(self, rec, slots: slot_file.SavedSlots | None) -> slot_file.StoredVectors | None:
        if slots is None:
            return None
        graph = self._graph(rec[0])  # imgret's own reader of this file confirms each slot instead
        try:
            return slot_file.StoredVectors(self.path(rec[0]), self.path(slot_file.name_for(rec[0])), slots,
                                           dim=self.dim, dtype=self.dtype, count=rec[1].count,
                                           confirm=graph.key_at if graph is not None else None)
        except vectors.IndexDamaged:
            return None

    def _graph(self, name: str):
        """The file ``name`` as imgret's own reader has it open for searching, or ``None``."""
        searched = self._searchable
        settled = searched.settled if searched is not None else None
        # imgret's own reader (graph_file.GraphFile) has vectors_found; usearch's view has not
        return settled if hasattr(settled, "vectors_found") and self._searched_name == name else None

    def _give_up_stored(self) -> None:
        """The slot table turned out damaged: closed, and not opened again until the file changes."""
        name = self._stored[0]
        self._drop_stored()
        self._stored = (name, None)

    def _drop_stored(self) -> None:
        if self._stored is not None and self._stored[1] is not None:
            self._stored[1].close()
        self._stored = None

    def _open_searchable(self, *, own: bool = False) -> vectors.Searchable:
        rec = self.record()
        if self._stored is not None and (rec is None or self._stored[0] != rec[0]):
            self._drop_stored()  # a writer replaced the file since: look vectors up in the one searched
        settled = self._view(rec, missing_ok=True, own=own) if rec is not None else None
        if settled is None and rec is not None and self.catalogue.format != 1:
            self._drop_stored()  # a writer replaced the file between our two reads: once more
            rec = self.record()
            settled = self._view(rec, missing_ok=False, own=own) if rec is not None else None
        self._searched_name = rec[0] if rec is not None else None
        legacy_fresh = self.catalogue.format == 1 and settled is not None
        keys, overlay = set(), None
        if not legacy_fresh:  # format 1 keeps every vector in the catalogue: "pending" means all
            # Stored as the file stores them, so a pending vector's distances are those it will have there.
            overlay = (vectors.pending_vectors(self.dim, self.metric, self.dtype) if own else
                       vectors.new_index(self.dim, self.metric, self.dtype,
                                         onnxruntime_first=self.onnxruntime_first or settled is None))
            for k, v in self.catalogue.pending(self.dim):
                overlay.add(k, v)
                keys.update(int(x) for x in k)
        dead = int(self.catalogue.get_meta("index_dead", "0")) if settled is not None else 0
        return vectors.Searchable(settled, overlay, keys, dead)

    def _view(self, rec: tuple[str, vectors.SavedIndex], *, missing_ok: bool, key_lookups: bool | None = None,
              own: bool = False):
        name, saved = rec
        if own:  # a recorded slot table says the layout is the one imgret reads; opened after, confirmed
            key_lookups = self.slots_record() is None
        elif key_lookups is None:  # usearch's key table only when this very file has no sound slot table
            table = self.stored() if self.catalogue.format != 1 else None
            key_lookups = table is None or self._stored[0] != name
        try:
            if own and not key_lookups:  # a sound slot table: the layout graph_file reads
                return self.io.open_graph(self.path(name), saved, self.dim, self.dtype, self.metric)
            # Through usearch's key table (no slot table), stored vectors need usearch: a later query
            # picture may then still need embedding, so onnxruntime loads first.
            return self.io.open_view(self.path(name), saved, self.dim, key_lookups=key_lookups,
                                     onnxruntime_first=self.onnxruntime_first or key_lookups)
        except vectors.IndexDamaged as exc:
            if self.catalogue.format == 1 or (missing_ok and isinstance(exc.__cause__, FileNotFoundError)):
                return None  # format 1: search the catalogue's own copies, as format 1 did
            raise LibraryError(
                f"the library's vector file {name} is damaged ({exc}); it is never searched: "
                "run `imgret index FOLDER` to rebuild it (its pictures are read again)"
            ) from exc

    def damaged_graph(self, exc: vectors.IndexDamaged) -> LibraryError:
        """The error for damage found while searching (a neighbour list pointing outside the graph:
        the middle of a large file, which only ``imgret check`` reads whole)."""
        rec = self.record()
        name = rec[0] if rec else "?"
        return LibraryError(
            f"the library's vector file {name} is damaged ({exc}); it is never searched: run `imgret check` "
            "(it marks the file for rebuilding), then `imgret index FOLDER` (its pictures are read again)")

    def settled_vector(self, key: int) -> np.ndarray | None:
        """The vector of ``key`` in the vector file, if there: through the slot table when the file
        has a sound one (no usearch needed), else through usearch's key table."""
        stored = self.stored() if self.catalogue.format != 1 else None
        if stored is not None:
            try:
                return stored.get(key)
            except vectors.IndexDamaged:  # confirmed against the file, lazily: not used again here
                self._give_up_stored()
        index = self.searchable().settled
        if index is None or not hasattr(index, "get") or key not in index:
            return None  # imgret's own reader has no key table: the picture is embedded instead
        return vectors.stored_vectors(index, key).reshape(-1).copy()

    def vectors_of(self, keys: list[int]) -> dict[int, np.ndarray]:
        """The vectors of those ``keys`` that have one, by key, as :meth:`Catalogue.vector` gives them
        one at a time: a pending vector from the catalogue, a settled one from the file (all at once
        through the slot table when the file has one)."""
        pending = self.searchable().overlay_keys  # pending when the file was opened: in the catalogue
        graph = self._graph(self._searched_name)
        out = graph.vectors_found([k for k in keys if k not in pending]) if graph is not None else {}
        stored = self.stored() if self.catalogue.format != 1 else None
        if stored is None:
            found = {k: self.catalogue.vector(k) for k in keys if k not in out}
            return out | {k: v for k, v in found.items() if v is not None}
        try:
            out |= stored.get_many([k for k in keys if k not in pending and k not in out])
        except vectors.IndexDamaged:  # confirmed against the file, lazily: not used again here
            self._give_up_stored()
            return self.vectors_of(keys)
        for k in keys:
            if k in pending and (vec := self.catalogue.vector(k)) is not None:
                out[k] = vec
        return out

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and vectors of every picture in the library, in key order: those the file holds and
        those still pending in the catalogue (format 1: all of them are in the catalogue)."""
        keys_parts, vec_parts = [], []
        rec = self.record() if self.catalogue.format != 1 else None
        settled = self._view(rec, missing_ok=False, key_lookups=True) if rec is not None else None
        if settled is not None:  # mapped, not loaded: the pending ones need no search structure either
            keys = self.catalogue.settled_keys()
            if len(keys):
                keys_parts.append(keys)
                vec_parts.append(vectors.stored_vectors(settled, keys).reshape(len(keys), self.dim))
            settled.reset()
        for keys, vecs in self.catalogue.pending(self.dim):
            keys_parts.append(keys)
            vec_parts.append(vecs)
        if not keys_parts:
            return np.zeros(0, dtype=np.uint64), np.zeros((0, self.dim), dtype=np.float32)
        keys, vecs = np.concatenate(keys_parts), np.concatenate(vec_parts)
        order = np.argsort(keys, kind="stable")
        return keys[order], vecs[order]

    # -- writing ------------------------------------------------------------------------------------
    def ensure_sound(self) -> int:
        """Check the recorded file before a run (whole after an unclean shutdown); if it is damaged,
        mark the pictures whose vectors were only there for embedding again. Returns how many."""
        rec = self.record()
        if rec is None:
            return 0
        try:
            if self.full_check:
                self.io.verify(self.path(rec[0]), rec[1], full=True)
            else:
                self.io.check_sample(self.path(rec[0]), rec[1])
            self.full_check = False
            return 0
        except vectors.IndexDamaged:
            return self._lose_file()

    def _lose_file(self) -> int:
        lost = self.catalogue.settled_keys()
        self.catalogue.mark_unembedded(lost)
        self.catalogue.drop_meta(*INDEX_META)
        self.catalogue.commit()
        self.forget()
        return len(lost)

    def refresh(self, *, force: bool = False) -> str:
        """Write the pending vectors into a new vector file when worth it: ``"fresh"`` (nothing to
        do; the file is not read), ``"pending"`` (a few changes left pending), ``"updated"`` (the old
        file plus the changes) or ``"rebuilt"`` (from the pending vectors alone). Needs the lock."""
        rec = self.record()
        if rec is not None and self.catalogue.format != 1:
            self._ensure_slots(rec)
        changes = self.catalogue.pending_count() + int(self.catalogue.get_meta("index_dead", "0"))
        if rec is not None and changes == 0 and not force:
            return "fresh"
        if rec is not None and not force and changes <= min(MAX_PENDING, rec[1].count // PENDING_SHARE):
            return "pending"
        self.forget()
        index = self._base(rec)
        outcome = "rebuilt" if index is None else "updated"
        index = index if index is not None else vectors.new_index(self.dim, self.metric, self.dtype)
        have = np.asarray(index.keys, dtype=np.uint64)
        keep = self.catalogue.settled_keys()
        stale = np.setdiff1d(have, keep, assume_unique=True)  # removed, or updated (now pending)
        if len(stale):
            index.remove(stale)
        lost = np.setdiff1d(keep, have, assume_unique=True)
        if len(lost):  # settled rows with no vector anywhere: embed again on the next run
            self.catalogue.mark_unembedded(lost)
        del have, keep, stale, lost  # 8 bytes a picture each: not held through the build
        for keys, vecs in self.catalogue.pending(self.dim):  # chunks: never all pending vectors at once
            index.add(keys, vecs)
        self._save(index)
        return outcome

    def _ensure_slots(self, rec: tuple[str, vectors.SavedIndex]) -> None:
        """Give the recorded vector file a sound slot table: check the recorded one (its SHA-256:
        ~10 ms at 1M pictures); write one for a file made by older code or whose table is missing
        or damaged, after checking the whole vector file (once; the table is read from its graph)."""
        name, saved = rec
        slots_path = self.path(slot_file.name_for(name))
        recorded = self.slots_record()
        if recorded is not None:
            try:
                slot_file.verify(slots_path, recorded)
                return
            except vectors.IndexDamaged:
                pass
        try:
            self.io.verify(self.path(name), saved, full=True)
            made = slot_file.write(self.path(name), slots_path)
        except (vectors.IndexDamaged, OSError):
            return  # a damaged vector file is found and handled by ensure_sound / _base
        self.forget()
        self.catalogue.set_meta(index_slots_sha256=made.sha256, index_slots_size=made.size)
        self.catalogue.commit()

    def _base(self, rec):
        """The recorded file loaded to be changed, or ``None`` (none, or damaged: then its vectors
        are lost and :meth:`refresh` marks their pictures for embedding again)."""
        if rec is None or self.catalogue.format == 1:
            return None
        try:
            return self.io.load_for_update(self.path(rec[0]), rec[1], self.dim)
        except vectors.IndexDamaged:
            return None

    def _save(self, index) -> None:
        serial = int(self.catalogue.get_meta("index_serial", "0")) + 1
        name = f"vectors-{serial}.usearch"
        saved = self.io.save(index, self.path(name))
        slots = slot_file.write(self.path(name), self.path(slot_file.name_for(name)))
        # The index is as big as the file: free it before the catalogue clears the pending rows
        # (a transaction as big as they were), so the two never add up in this process's peak.
        index.reset()
        self.catalogue.set_meta(
            index_file=name, index_count=saved.count, index_sha256=saved.sha256, index_size=saved.size,
            index_sample=saved.sample, index_dead=0, index_serial=serial,
            index_slots_sha256=slots.sha256, index_slots_size=slots.size,
            index_generation=self.catalogue.get_meta("catalogue_generation", "0"),
        )
        self.catalogue.clear_pending()
        self.catalogue.commit()
        self.catalogue.vacuum()
        self.remove_unused()

    def remove_unused(self) -> None:
        """Delete vector files the catalogue no longer names (readers that mapped one keep it) and
        temporary files of killed saves. Only the writer calls this."""
        from imgret.runtime import atomic  # the write path only

        atomic.remove_stale_temps(self.folder, "vectors")  # ".vectors-*.tmp": this and older formats
        rec = self.record()
        current = (rec[0], slot_file.name_for(rec[0])) if rec else ()
        ours = (".usearch", slot_file.SUFFIX)
        for entry in os.listdir(self.folder):
            if entry not in current and (entry == LEGACY_FILE or (entry.startswith("vectors-") and entry.endswith(ours))):
                try:
                    os.unlink(self.path(entry))
                except OSError:
                    pass
