"""The catalogue: a SQLite database that is the library's source of truth.

One row per file seen: where it is, size, modification time, content hash (32 bytes), status (``ok``
or ``skipped`` with a reason). A picture's vector lives here only while it is *pending* (committed, not
yet in the vector file); the vector file holds every other one (see ``vector_file.py``). Paths under an
indexed folder are stored relative to it (table ``roots``), so moving the folder is one UPDATE
(:meth:`Catalogue.relocate`). A ``meta`` table records the format, the model, the vector file. A
``folders`` table holds each folder's signature, so a re-index reads the rows of changed folders only
(see ``catalogue_schema.py`` for when it is trusted).

Integrity: a writer runs ``PRAGMA quick_check`` when it opens; a reader checks only the file header
(magic, page size, page count against the file's size), so a cold query stays cheap; damage a query
touches makes SQLite raise, which the library turns into one clear message (``RECOVERY``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from hashlib import blake2b

import numpy as np

from imgret.errors import LibraryError
from imgret.runtime import catalogue_schema as schema

CATALOGUE_FORMAT = schema.CATALOGUE_FORMAT
# What to do about a damaged catalogue. The pictures are untouched, so a fresh library rebuilds it all.
RECOVERY = "move the library folder aside (or delete it) and run `imgret index FOLDER` again to rebuild it"
ABSOLUTE = 0  # the root id of rows whose path is absolute
SEP = os.fsencode(os.sep)
_AFTER_SEP = bytes([SEP[0] + 1])  # the byte after the separator: ``a/`` <= every path in folder ``a`` < ``a0``
COLUMNS = "id, root, path, size, mtime_ns, sha256, status, reason, EXISTS (SELECT 1 FROM pending p WHERE p.id = files.id)"


@dataclass(frozen=True)
class Row:
    """One catalogue entry; ``pending``: its vector is still in the catalogue, not the vector file."""

    key: int
    path: str
    size: int
    mtime_ns: int
    sha256: bytes | None
    status: str
    reason: str | None
    pending: bool = False

    @property
    def skip_reason(self) -> str | None:
        """Why the file is recorded as skipped; None when it holds a vector."""
        return None if self.status == "ok" else (self.reason or "unreadable")

    def matches(self, size: int, mtime_ns: int) -> bool:
        """Whether a file of this size and mtime is taken to be unchanged since it was catalogued."""
        return self.size == size and self.mtime_ns == mtime_ns


def encode_path(path: str) -> bytes:
    """Paths are stored as the exact bytes the OS uses, so any name survives the round trip."""
    return os.fsencode(path)


def decode_path(blob: bytes) -> str:
    """The inverse of :func:`encode_path`."""
    return os.fsdecode(bytes(blob))


def _decode_all(head: bytes, blobs: Iterable[bytes]) -> list[str]:
    """``decode_path(head + blob)`` for many blobs in one decode: joined by NUL, which no path holds
    and which never continues a multi-byte character, so each path decodes exactly as on its own.
    A million paths one at a time cost about a second; this is a few C loops."""
    joined = (b"\0" + head).join(blobs)
    return os.fsdecode(head + joined).split("\0")


def hash_bytes(sha256: str | bytes | None) -> bytes | None:
    """A content hash as its 32 raw bytes (given as bytes or as 64 hex digits)."""
    if sha256 is None or isinstance(sha256, bytes):
        return sha256
    return bytes.fromhex(sha256)


class Catalogue:
    """Typed access to ``catalogue.sqlite``; the library owns transactions through :meth:`commit`.

    ``vector_store`` (set by the vector file) gives the vector of a key that is not pending.
    """

    def __init__(self, path: str, *, readonly: bool = False, fault: Callable[[str], None] | None = None) -> None:
        self.path, self.readonly, self.dirty = path, readonly, False
        self.vector_store: Callable[[int], np.ndarray | None] | None = None
        try:
            if readonly:
                check_header(path)
                self.db = sqlite3.connect("file:" + _quote(path) + "?mode=ro", uri=True, timeout=30.0)
            else:
                self.db = sqlite3.connect(path, timeout=30.0)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.format = schema.detect_format(self.db)
            if not readonly:
                self._prepare_for_writing(fault)
            self.db.execute("SELECT id FROM files LIMIT 1").fetchall()  # a non-database fails here
            self.roots = self._load_roots()
            self._stamp: str | None = None
            if not readonly:
                self._trust_folders()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise damaged(path, exc) from exc
        except BaseException:
            self._close_quietly()
            raise

    def _prepare_for_writing(self, fault) -> None:
        """Writers verify the whole file (cheap readers rely on it) and upgrade format 1 first."""
        if not schema.table_names(self.db):
            self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only possible before the file is written
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        check = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LibraryError(f"catalogue {self.path} is damaged ({check}); {RECOVERY}")
        schema.register_functions(self.db)
        if self.format == 1:
            schema.upgrade_v1(self.db, fault)
            self.format = CATALOGUE_FORMAT
        self.db.executescript(schema.SCHEMA)
        self.db.commit()

    def _close_quietly(self) -> None:
        if hasattr(self, "db"):
            self.db.close()

    def _load_roots(self) -> dict[int, bytes]:
        if self.format == 1:
            return {}
        return {int(i): bytes(p) for i, p in self.db.execute("SELECT id, path FROM roots")}

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """One ``meta`` value."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def meta(self) -> dict[str, str]:
        """Every ``meta`` value."""
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: object) -> None:
        """Set ``meta`` values (in the open transaction)."""
        self.db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def drop_meta(self, *keys: str) -> None:
        """Remove ``meta`` values (in the open transaction)."""
        self.db.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in keys])

    def commit(self) -> None:
        """Commit; the generation moves on only when a file row changed, so a run that found nothing
        to do leaves the library (and its vector file) exactly as it was. The folder signatures'
        stamp follows the generation and the roots in the same transaction (see :meth:`folders_stamp`)."""
        if self.dirty:
            gen = int(self.get_meta("catalogue_generation", "0")) + 1
            self.set_meta(catalogue_generation=gen, updated=time.time())
            self.dirty = False
        if not self.readonly:
            stamp = self.folders_stamp()
            if stamp != self._stamp:
                self.set_meta(folders_stamp=stamp)
                self._stamp = stamp
        self.db.commit()

    def rollback(self) -> None:
        """Drop the open transaction."""
        self.db.rollback()
        self.dirty = False
        self._stamp = None  # what the rolled-back transaction may have written is gone

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def forget_all(self) -> None:
        """Drop every file and the vector file's record (``--rebuild``); the caller commits."""
        self.db.execute("DELETE FROM files")
        self.db.execute("DELETE FROM folders")
        self.db.execute("DELETE FROM meta WHERE key LIKE 'index_%'")
        self.dirty = True

    # -- where files are ----------------------------------------------------------------------------
    def split(self, path: str) -> tuple[int, bytes]:
        """``(root id, stored path)`` of an absolute path: relative to the indexed folder holding it."""
        raw = encode_path(path)
        for rid, root in self.roots.items():
            if raw.startswith(root + SEP):
                return rid, raw[len(root) + 1:]
        return ABSOLUTE, raw

    def join(self, root: int, stored: bytes) -> str:
        """The absolute path of a stored ``(root, path)``."""
        stored = bytes(stored)
        return decode_path(stored if root == ABSOLUTE else self.roots[root] + SEP + stored)

    def add_root(self, folder: str) -> int:
        """Record ``folder`` (absolute) as an indexed folder; rows below it become relative to it.

        A folder inside one already recorded uses that one; recorded folders inside a new one are
        folded into it. Nothing is re-read: only stored paths are rewritten.
        """
        raw = encode_path(folder).rstrip(SEP) or SEP
        for rid, root in self.roots.items():
            if raw == root or raw.startswith(root + SEP):
                return rid
        rid = int(self.db.execute("INSERT INTO roots (path) VALUES (?) RETURNING id", (raw,)).fetchone()[0])
        for old, root in list(self.roots.items()):
            if root.startswith(raw + SEP):
                self._rebase(old, root[len(raw) + 1:] + SEP, rid)
                self.db.execute("DELETE FROM roots WHERE id = ?", (old,))
                self.db.execute("DELETE FROM folders WHERE root = ?", (old,))
                del self.roots[old]
        self._rebase_absolute(raw, rid)
        self._derive_folders("root = ?", (rid,))  # the rows just moved in: their folders, unsigned
        self.roots[rid] = raw
        return rid

    def _rebase(self, old: int, prefix: bytes, new: int) -> None:
        # ``||`` yields TEXT in SQLite: cast back, paths are BLOBs of the OS's exact bytes.
        self.db.execute("UPDATE files SET root = ?, path = CAST(? || path AS BLOB) WHERE root = ?", (new, prefix, old))

    def _rebase_absolute(self, raw: bytes, rid: int) -> None:
        start = raw + SEP
        self.db.execute(
            "UPDATE files SET root = ?, path = substr(path, ?) WHERE root = ? AND substr(path, 1, ?) = ?",
            (rid, len(start) + 1, ABSOLUTE, len(start), start),
        )

    def _derive_folders(self, where: str, args: tuple) -> None:
        """Give every folder holding rows (of a root) an unsigned ``folders`` entry if it has none."""
        self.db.execute("INSERT OR IGNORE INTO folders (root, path, signature) SELECT DISTINCT root, "
                        f"imgret_folder(path), NULL FROM files WHERE {where}", args)

    def relocate(self, old: str, new: str) -> int:
        """Re-point every stored path under folder ``old`` to folder ``new``; returns how many
        recorded folders (or absolute rows) moved. Nothing is read from the pictures."""
        old_raw, new_raw = encode_path(old).rstrip(SEP), encode_path(new).rstrip(SEP)
        moved = 0
        for rid, root in list(self.roots.items()):
            if root == old_raw or root.startswith(old_raw + SEP):
                moved_root = new_raw + root[len(old_raw):]
                self.db.execute("UPDATE roots SET path = ? WHERE id = ?", (moved_root, rid))
                self.roots[rid] = moved_root
                moved += 1
        start = old_raw + SEP
        cur = self.db.execute(
            "UPDATE files SET path = CAST(? || substr(path, ?) AS BLOB) WHERE root = ? AND substr(path, 1, ?) = ?",
            (new_raw + SEP, len(start) + 1, ABSOLUTE, len(start), start),
        )
        return moved + cur.rowcount

    def root_folders(self) -> list[str]:
        """The indexed folders recorded, as absolute paths."""
        return sorted(decode_path(p) for p in self.roots.values())

    # -- rows ---------------------------------------------------------------------------------------
    def lookup(self, path: str) -> Row | None:
        """The row of an absolute path, or ``None``."""
        if self.format == 1:
            r = self.db.execute(f"SELECT {_V1_COLUMNS} FROM files WHERE path = ?", (encode_path(path),)).fetchone()
        else:
            r = self.db.execute(f"SELECT {COLUMNS} FROM files WHERE root = ? AND path = ?", self.split(path)).fetchone()
        return self._row(r) if r else None

    # -- folder signatures (see catalogue_schema.py) ---------------------------------------------------
    def folders_stamp(self) -> str:
        """What the ``folders`` table is tied to: the generation (which every writer, old or new,
        moves on when a file row changes) and the recorded roots (which an older writer may fold or
        move without touching a file row)."""
        roots = blake2b(repr(sorted(self.roots.items())).encode(), digest_size=8).hexdigest()
        return f"{self.get_meta('catalogue_generation', '0')}:{roots}"

    def _trust_folders(self) -> None:
        """A writer's first step: if the ``folders`` table is not the one this catalogue's last
        writer kept (new, or a writer that does not keep it changed something since), rebuild it from
        the rows, every folder unsigned, so a re-index compares everything once."""
        if self.format == 1:
            return
        stamp = self.folders_stamp()
        if self.get_meta("folders_stamp") == stamp:
            self._stamp = stamp
            return
        self.db.execute("DELETE FROM folders")
        self._derive_folders("root != ?", (ABSOLUTE,))
        self.set_meta(folders_stamp=stamp)
        self.db.commit()
        self._stamp = stamp

    def _folder_key(self, folder: str) -> tuple[int, bytes]:
        """``(root id, stored folder path)`` of an absolute folder, as ``folders`` keys it."""
        rid, stored = self.split(os.path.join(folder, "x"))
        return rid, stored[:-2] if len(stored) > 1 else b""

    def _folder_path(self, rid: int, stored: bytes) -> str:
        stored = bytes(stored)
        return decode_path(self.roots[rid] + SEP + stored if stored else self.roots[rid])

    def size_hint(self) -> int:
        """At least the number of file rows (the largest row id; one index look-up, not a count):
        enough to tell a big library from a small one before anything else is read."""
        return int(self.db.execute("SELECT max(id) FROM files").fetchone()[0] or 0)

    def folder_signatures(self, folder: str) -> dict[str, bytes | None]:
        """Every recorded folder at or below ``folder`` (absolute), by absolute path, with its
        signature (``None``: its rows must be compared)."""
        rid, stored = self._folder_key(folder)
        if rid == ABSOLUTE or self.format == 1:
            return {}
        where, args = "root = ?", (rid,)
        if stored:
            where, args = "root = ? AND (path = ? OR (path >= ? AND path < ?))", (rid, stored, stored + SEP, stored + _AFTER_SEP)
        rows = self.db.execute(f"SELECT path, signature FROM folders WHERE {where}", args).fetchall()
        return {self._folder_path(rid, p): (None if sig is None else bytes(sig)) for p, sig in rows}

    def set_signatures(self, signatures: dict[str, bytes | None]) -> None:
        """Record folders' signatures (in the open transaction); only for folders whose rows now
        match exactly the pictures the signature was made from."""
        rows = [(rid, stored, sig) for rid, stored, sig in
                ((*self._folder_key(f), s) for f, s in signatures.items()) if rid != ABSOLUTE]
        self.db.executemany("INSERT INTO folders (root, path, signature) VALUES (?, ?, ?) "
                            "ON CONFLICT(root, path) DO UPDATE SET signature = excluded.signature", rows)

    def forget_folders(self, folders: Iterable[str]) -> None:
        """Drop folders' entries (folders that are gone; their rows are deleted by the caller)."""
        self.db.executemany("DELETE FROM folders WHERE root = ? AND path = ?", [self._folder_key(f) for f in folders])

    def known_in(self, folder: str, subfolders: Iterable[str] = ()) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """The rows of the files directly in ``folder`` (absolute), by absolute path, as two
        dictionaries: pictures ``(stored path, size, mtime_ns, key)`` and recorded skips ``(stored path,
        size, mtime_ns, key, reason)``. Read through the ``(root, path)`` index; the ranges of the
        ``subfolders`` named (those the walk enters) are jumped over, so a folder's cost does not
        grow with what lies below it."""
        rid, stored = self._folder_key(folder)
        prefix = stored + SEP if stored else b""
        jumps = sorted(prefix + encode_path(name) + SEP for name in subfolders)  # in the index's order
        starts = [prefix] + [j[:-1] + _AFTER_SEP for j in jumps]
        ends = jumps + [stored + _AFTER_SEP if stored else None]
        rows: list[tuple] = []
        sql = "SELECT path, size, mtime_ns, id, status, coalesce(reason, 'unreadable') FROM files WHERE root = ? AND path >= ?"
        for lo, hi in zip(starts, ends):
            if hi is None:
                rows += self.db.execute(sql, (rid, lo))
            else:
                rows += self.db.execute(sql + " AND path < ?", (rid, lo, hi))
        cut, head = len(prefix), (self.roots[rid] + SEP) if rid != ABSOLUTE else b""
        rows = [r for r in rows if SEP not in r[0][cut:]]  # deeper rows: folders not entered this time
        paths = _decode_all(head, [r[0] for r in rows]) if rows else []
        pictures = {p: r[:4] for p, r in zip(paths, rows) if r[4] == "ok"}
        skipped = {p: (*r[:4], r[5]) for p, r in zip(paths, rows) if r[4] != "ok"}
        return pictures, skipped

    def put_ok(self, path: str, size: int, mtime_ns: int, sha256: str | bytes, vector: np.ndarray) -> int:
        """Store a picture with its (pending) vector; returns its key."""
        vec = np.ascontiguousarray(vector, dtype=np.float32)
        if not np.all(np.isfinite(vec)):
            raise ValueError("refusing to store a vector that is not finite")
        key = self._upsert(path, size, mtime_ns, (hash_bytes(sha256), "ok", None))
        self.db.execute("INSERT OR REPLACE INTO pending (id, vector) VALUES (?, ?)", (key, vec.tobytes()))
        return key

    def put_skipped(self, path: str, size: int, mtime_ns: int, reason: str, sha256: str | bytes | None = None) -> int:
        """Store a file that was passed over, with the reason."""
        key = self._upsert(path, size, mtime_ns, (hash_bytes(sha256), "skipped", reason))
        self.db.execute("DELETE FROM pending WHERE id = ?", (key,))
        return key

    def _upsert(self, path: str, size: int, mtime_ns: int, row: tuple) -> int:
        """Insert or replace the row of ``path``; ``row`` is (sha256, status, reason)."""
        where = self.split(path)
        old = self.db.execute("SELECT status, NOT EXISTS (SELECT 1 FROM pending p WHERE p.id = files.id) FROM files "
                             "WHERE root = ? AND path = ?", where).fetchone()
        if old is not None and old[0] == "ok" and old[1]:
            self._count_dead(1)  # its vector in the vector file is now out of date
        cur = self.db.execute(
            """INSERT INTO files (root, path, size, mtime_ns, sha256, status, reason)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(root, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                 sha256 = excluded.sha256, status = excluded.status, reason = excluded.reason
               RETURNING id""",
            (*where, size, mtime_ns, *row),
        )
        self.dirty = True
        key = int(cur.fetchone()[0])
        if where[0] != ABSOLUTE:  # its folder's signature no longer vouches for its rows
            self.db.execute("INSERT INTO folders (root, path, signature) VALUES (?, ?, NULL) "
                            "ON CONFLICT(root, path) DO UPDATE SET signature = NULL",
                            (where[0], schema.folder_of(where[1])))
        return key

    def _count_dead(self, n: int) -> None:
        """Keys in the vector file that no longer stand for a settled picture (searches skip them)."""
        if n and self.get_meta("index_file") is not None:
            self.set_meta(index_dead=int(self.get_meta("index_dead", "0")) + n)

    def delete(self, keys: Iterable[int]) -> int:
        """Forget rows by key; returns how many."""
        keys = list(keys)
        settled = 0
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            self.db.executemany("UPDATE folders SET signature = NULL WHERE root = ? AND path = ?", {
                (r, schema.folder_of(p)) for r, p in self.db.execute(f"SELECT root, path FROM files WHERE id IN ({marks})", chunk)})
            settled += self.db.execute(
                f"SELECT count(*) FROM files WHERE id IN ({marks}) AND status = 'ok' "
                "AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.id = files.id)", chunk
            ).fetchone()[0]
            self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)
            self.db.execute(f"DELETE FROM pending WHERE id IN ({marks})", chunk)
        self._count_dead(settled)
        self.dirty = self.dirty or bool(keys)
        return len(keys)

    def rows(self, status: str | None = None) -> Iterator[Row]:
        """Every row (or every row of one status), in key order."""
        sql = f"SELECT {COLUMNS if self.format != 1 else _V1_COLUMNS} FROM files"
        args: tuple = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        for r in self.db.execute(sql + " ORDER BY id", args):
            yield self._row(r)

    def paths(self, keys: Iterable[int]) -> dict[int, str]:
        """Absolute paths of the given keys (keys no longer in the catalogue are left out)."""
        out: dict[int, str] = {}
        keys = list(keys)
        root_col = "root" if self.format != 1 else "0"
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT id, {root_col}, path FROM files WHERE id IN ({marks})"
            out.update({k: self.join(r, p) for k, r, p in self.db.execute(q, chunk)})
        return out

    # -- vectors ------------------------------------------------------------------------------------
    def pending_vector(self, key: int) -> np.ndarray | None:
        """The vector of ``key`` if it is still in the catalogue."""
        r = self.db.execute(self._sql("SELECT vector FROM pending WHERE id = ?"), (key,)).fetchone()
        return np.frombuffer(r[0], dtype=np.float32).copy() if r and r[0] is not None else None

    def vector(self, key: int) -> np.ndarray | None:
        """The vector of an ``ok`` row: pending here, else from the vector file."""
        vec = self.pending_vector(key)
        if vec is None and self.vector_store is not None:
            vec = self.vector_store(key)
        return vec

    def content_hashes(self) -> dict[int, bytes | None]:
        """The content hash (32 raw sha256 bytes, or None) of every ``ok`` row, by key."""
        return dict(self.db.execute("SELECT id, sha256 FROM files WHERE status = 'ok'").fetchall())

    def vector_by_hash(self, sha256: str | bytes) -> np.ndarray | None:
        """A stored vector of a picture with this content, if there is one."""
        rows = self.db.execute("SELECT id FROM files WHERE sha256 = ? AND status = 'ok' LIMIT 4", (hash_bytes(sha256),))
        for (key,) in rows.fetchall():
            vec = self.vector(key)
            if vec is not None:
                return vec
        return None

    def pending(self, dim: int, chunk: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(keys, vectors)`` of the pending rows in chunks, so a million never sit in memory twice."""
        cur = self.db.execute(self._sql("SELECT id, vector FROM pending ORDER BY id"))
        while batch := cur.fetchmany(chunk):
            keys = np.fromiter((k for k, _ in batch), dtype=np.uint64, count=len(batch))
            vecs = np.frombuffer(b"".join(v for _, v in batch), dtype=np.float32)
            if vecs.size != len(batch) * dim:
                raise LibraryError(f"catalogue {self.path} holds vectors of another size than {dim}; {RECOVERY}")
            yield keys, vecs.reshape(len(batch), dim)

    def pending_count(self) -> int:
        """How many vectors are still only in the catalogue."""
        return int(self.db.execute(self._sql("SELECT count(*) FROM pending")).fetchone()[0])

    def settled_keys(self) -> np.ndarray:
        """Keys of ``ok`` rows whose vector is in the vector file (not pending), sorted."""
        cur = self.db.execute("SELECT id FROM files WHERE status = 'ok' AND id NOT IN (SELECT id FROM pending) ORDER BY id")
        return np.fromiter((k for (k,) in cur), dtype=np.uint64)

    def clear_pending(self) -> None:
        """The vector file now holds every pending vector: drop them here (caller commits)."""
        self.db.execute("DELETE FROM pending")

    def mark_unembedded(self, keys: np.ndarray) -> None:
        """Rows whose vector was lost with a damaged vector file: their size is set to -1, so the next
        index run sees them as changed and embeds them again."""
        ids = [int(k) for k in keys]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            self.db.execute(f"UPDATE files SET size = -1 WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        if ids:
            self.db.execute("UPDATE folders SET signature = NULL")  # rare (a lost vector file): all of them
        self.dirty = self.dirty or bool(ids)

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        out = {"ok": 0, "skipped": 0}
        out.update(dict(self.db.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall()))
        return out

    def skip_reasons(self) -> dict[str, int]:
        """Skipped rows per reason."""
        return dict(
            self.db.execute(
                "SELECT reason, count(*) FROM files WHERE status = 'skipped' GROUP BY reason ORDER BY reason"
            ).fetchall()
        )

    def _sql(self, sql: str) -> str:
        """The format-1 form of a pending-vector query: no ``pending`` table, every ``ok`` row's
        vector is in ``files``."""
        return _V1_SQL[sql] if self.format == 1 else sql

    def integrity_check(self) -> str:
        """SQLite's full ``integrity_check`` of every page: ``"ok"`` or the first problem found."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def vacuum(self) -> None:
        """Give pages freed by clearing the pending vectors back to the file system (new catalogues
        are created with incremental auto-vacuum; upgraded ones reuse the pages instead)."""
        self.db.executescript("PRAGMA incremental_vacuum;")  # executescript steps it to the end
        self.db.commit()

    def _row(self, r) -> Row:
        sha = r[5]
        if isinstance(sha, str):  # format 1: hex text
            sha = bytes.fromhex(sha)
        return Row(int(r[0]), self.join(int(r[1]), r[2]), int(r[3]), int(r[4]),
                   None if sha is None else bytes(sha), r[6], r[7], bool(r[8]))


_V1_COLUMNS = "id, 0, path, size, mtime_ns, sha256, status, reason, vector IS NOT NULL"
_V1_SQL = {
    "SELECT vector FROM pending WHERE id = ?": "SELECT vector FROM files WHERE id = ? AND status = 'ok'",
    "SELECT id, vector FROM pending ORDER BY id":
        "SELECT id, vector FROM files WHERE status = 'ok' AND vector IS NOT NULL ORDER BY id",
    "SELECT count(*) FROM pending": "SELECT count(*) FROM files WHERE status = 'ok'",
}


def damaged(path: str, exc: BaseException) -> LibraryError:
    """The one message for a catalogue SQLite cannot read."""
    return LibraryError(f"catalogue {path} is damaged or not an imgret catalogue ({exc}); {RECOVERY}")


def check_header(path: str) -> None:
    """A reader's cheap check: SQLite's magic, a sane page size and, where the header vouches for it,
    a page count that matches the file's size (a truncated or overwritten file fails here)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise LibraryError(f"cannot read catalogue {path}: {exc.strerror}") from exc
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        raise LibraryError(f"catalogue {path} is damaged or not an imgret catalogue (bad header); {RECOVERY}")
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96] and pages > 0
    # While a writer checkpoints its write-ahead log, the header may briefly run ahead of the size.
    busy = os.path.exists(path + "-wal") and os.path.getsize(path + "-wal") > 0
    if page < 512 or page & (page - 1) or (not busy and (size % page or (valid and pages * page != size))):
        raise LibraryError(f"catalogue {path} is damaged (its size does not match its header); {RECOVERY}")


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))
