"""The catalogue: a SQLite database that is the library's source of truth.

One row per file seen: its path as raw OS bytes, size, modification time, content hash, status
(``ok`` with a float32 vector, or ``skipped`` with a reason). A ``meta`` table records the format
version, the model's fingerprint and preprocessing, and what the derived usearch index file was built
from (generation, count, checksum). WAL mode lets queries read the last committed state while an
indexer writes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from imgret.errors import LibraryError

CATALOGUE_FORMAT = 1
# What to do about a damaged catalogue. The pictures are untouched, so a fresh library rebuilds it all.
RECOVERY = "move the library folder aside (or delete it) and run `imgret index FOLDER` again to rebuild it"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason TEXT,
    vector BLOB,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
"""


@dataclass(frozen=True)
class Row:
    """One catalogue entry."""

    key: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    status: str
    reason: str | None

    def matches(self, size: int, mtime_ns: int) -> bool:
        """Whether a file of this size and mtime is taken to be unchanged since it was catalogued."""
        return self.size == size and self.mtime_ns == mtime_ns


def encode_path(path: str) -> bytes:
    """Paths are stored as the exact bytes the OS uses, so any name survives the round trip."""
    return os.fsencode(path)


def decode_path(blob: bytes) -> str:
    """The inverse of :func:`encode_path`."""
    return os.fsdecode(bytes(blob))


class Catalogue:
    """Typed access to ``catalogue.sqlite``; the library owns transactions through :meth:`commit`."""

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.path = path
        try:
            if readonly:
                uri = "file:" + _quote(path) + "?mode=ro"
                self.db = sqlite3.connect(uri, uri=True, timeout=30.0)
            else:
                self.db = sqlite3.connect(path, timeout=30.0)
            self.db.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute("PRAGMA synchronous = FULL")
                self.db.executescript(SCHEMA)
                self.db.commit()
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise LibraryError(f"catalogue {path} is damaged ({check}); {RECOVERY}")
            # Touch the tables so a non-database file fails here, not later.
            self.db.execute("SELECT count(*) FROM files").fetchone()
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "db"):
                self.db.close()
            raise LibraryError(f"catalogue {path} is damaged or not an imgret catalogue ({exc}); {RECOVERY}") from exc
        except LibraryError:
            self.db.close()
            raise

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, **values: object) -> None:
        self.db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def bump_generation(self) -> int:
        gen = int(self.get_meta("catalogue_generation", "0")) + 1
        self.set_meta(catalogue_generation=gen, updated=time.time())
        return gen

    def forget_all(self) -> None:
        """Drop every file and the vector file's record (``--rebuild``); the caller commits."""
        self.db.execute("DELETE FROM files")
        self.db.execute("DELETE FROM meta WHERE key LIKE 'index_%'")

    # -- rows ---------------------------------------------------------------------------------------
    def lookup(self, path: str) -> Row | None:
        r = self.db.execute(
            "SELECT id, path, size, mtime_ns, sha256, status, reason FROM files WHERE path = ?",
            (encode_path(path),),
        ).fetchone()
        return _row(r) if r else None

    def vector_by_hash(self, sha256: str) -> np.ndarray | None:
        r = self.db.execute(
            "SELECT vector FROM files WHERE sha256 = ? AND status = 'ok' AND vector IS NOT NULL LIMIT 1",
            (sha256,),
        ).fetchone()
        return np.frombuffer(r[0], dtype=np.float32).copy() if r else None

    def vector(self, key: int) -> np.ndarray | None:
        r = self.db.execute("SELECT vector FROM files WHERE id = ? AND status = 'ok'", (key,)).fetchone()
        return np.frombuffer(r[0], dtype=np.float32).copy() if r and r[0] is not None else None

    def put_ok(self, path: str, size: int, mtime_ns: int, sha256: str, vector: np.ndarray) -> int:
        vec = np.ascontiguousarray(vector, dtype=np.float32)
        if not np.all(np.isfinite(vec)):
            raise ValueError("refusing to store a vector that is not finite")
        return self._upsert(path, size, mtime_ns, sha256=sha256, status="ok", reason=None, vector=vec.tobytes())

    def put_skipped(self, path: str, size: int, mtime_ns: int, reason: str, sha256: str | None = None) -> int:
        return self._upsert(path, size, mtime_ns, sha256=sha256, status="skipped", reason=reason, vector=None)

    def _upsert(self, path: str, size: int, mtime_ns: int, **row: object) -> int:
        """Insert or replace the row of ``path``; ``row`` holds sha256, status, reason and vector."""
        cur = self.db.execute(
            """INSERT INTO files (path, size, mtime_ns, sha256, status, reason, vector, updated)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,
                 sha256 = excluded.sha256, status = excluded.status, reason = excluded.reason,
                 vector = excluded.vector, updated = excluded.updated
               RETURNING id""",
            (encode_path(path), size, mtime_ns, row["sha256"], row["status"], row["reason"], row["vector"], time.time()),
        )
        return int(cur.fetchone()[0])

    def delete(self, keys: Iterable[int]) -> int:
        keys = list(keys)
        self.db.executemany("DELETE FROM files WHERE id = ?", [(k,) for k in keys])
        return len(keys)

    def rows(self, status: str | None = None) -> Iterator[Row]:
        sql = "SELECT id, path, size, mtime_ns, sha256, status, reason FROM files"
        args: tuple = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        for r in self.db.execute(sql + " ORDER BY id", args):
            yield _row(r)

    def paths(self, keys: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT id, path FROM files WHERE id IN ({marks})"
            out.update({k: decode_path(p) for k, p in self.db.execute(q, chunk)})
        return out

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Keys and vectors of every ``ok`` row, in key order."""
        keys, vecs = [], []
        for key, blob in self.db.execute("SELECT id, vector FROM files WHERE status = 'ok' ORDER BY id"):
            v = np.frombuffer(blob, dtype=np.float32)
            if v.shape != (dim,):
                raise LibraryError(f"catalogue row {key} has a vector of {v.size} values, expected {dim}")
            keys.append(key)
            vecs.append(v)
        if not keys:
            return np.zeros(0, dtype=np.uint64), np.zeros((0, dim), dtype=np.float32)
        return np.asarray(keys, dtype=np.uint64), np.vstack(vecs).astype(np.float32)

    def content_hashes(self) -> dict[int, str | None]:
        """The content hash (sha256 hex, or None) of every ``ok`` row, by key."""
        return dict(self.db.execute("SELECT id, sha256 FROM files WHERE status = 'ok'").fetchall())

    def ok_keys(self) -> set[int]:
        return {int(k) for (k,) in self.db.execute("SELECT id FROM files WHERE status = 'ok'")}

    def keys_updated_since(self, when: float) -> set[int]:
        """``ok`` rows written at or after ``when`` (time.time()), whose vectors may have changed."""
        return {int(k) for (k,) in self.db.execute(
            "SELECT id FROM files WHERE status = 'ok' AND updated >= ?", (when,))}

    def vectors_of(self, keys: list[int], dim: int) -> np.ndarray:
        out = np.zeros((len(keys), dim), dtype=np.float32)
        for i, key in enumerate(keys):
            vec = self.vector(key)
            if vec is None or vec.shape != (dim,):
                raise LibraryError(f"catalogue row {key} has no usable vector")
            out[i] = vec
        return out

    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "skipped": 0}
        out.update(dict(self.db.execute("SELECT status, count(*) FROM files GROUP BY status").fetchall()))
        return out

    def skip_reasons(self) -> dict[str, int]:
        return dict(
            self.db.execute(
                "SELECT reason, count(*) FROM files WHERE status = 'skipped' GROUP BY reason ORDER BY reason"
            ).fetchall()
        )

    def commit(self) -> None:
        self.db.commit()

    def rollback(self) -> None:
        self.db.rollback()

    def close(self) -> None:
        self.db.close()


def _row(r) -> Row:
    return Row(int(r[0]), decode_path(r[1]), int(r[2]), int(r[3]), r[4], r[5], r[6])


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))
