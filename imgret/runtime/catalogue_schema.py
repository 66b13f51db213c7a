"""The catalogue's SQLite schema, its format number, and the one upgrade from format 1.

Format 2 (this one) stores each vector once: in the vector file, except while it is *pending*
(embedded and committed here, not yet written into a vector file). Paths under an indexed folder are
stored relative to that folder (``roots``), so a library moves with its pictures; content hashes are
32-byte BLOBs. Format 1 kept every vector here and in the vector file, absolute paths, and hex hashes;
it is read as it is and upgraded in place, in one transaction, by the first writer.
"""

from __future__ import annotations

import os
import sqlite3

CATALOGUE_FORMAT = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roots (id INTEGER PRIMARY KEY, path BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    root INTEGER NOT NULL,
    path BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 BLOB,
    status TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
    reason TEXT,
    UNIQUE (root, path)
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS pending (id INTEGER PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    root INTEGER NOT NULL,
    path BLOB NOT NULL,
    signature BLOB,
    PRIMARY KEY (root, path)
) WITHOUT ROWID;
"""
# Pending vectors have a table of their own: clearing it frees whole pages, which incremental
# auto-vacuum gives back to the file system, instead of leaving every row's page mostly empty.
# ``root`` 0 means ``path`` is absolute (a file added on its own, outside any indexed folder);
# AUTOINCREMENT so a deleted row's key is never reused while an older vector file still holds it.
# ``folders``: every folder (below a root; ``path`` relative to it, "" for the root itself) holding
# rows, with the signature of its pictures (``scan.signature_of``) written when the catalogue last
# matched them all, else NULL. A re-index lists a folder and compares its rows only when the
# signatures differ. Trusted only while the meta value ``folders_stamp`` names the current
# ``catalogue_generation`` and roots (see ``Catalogue.folders_stamp``): an older imgret, which
# does not keep this table, changes one or the other with every change it makes, and the next
# writer then rebuilds the table unsigned. An added table, not a new format: today's readers and
# writers open the catalogue as they are.
V1_META_DROPPED = ("index_generation", "index_count", "index_sha256", "index_size", "index_built_at")


def table_names(db: sqlite3.Connection) -> set[str]:
    """Names of the tables in ``db``."""
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def detect_format(db: sqlite3.Connection) -> int:
    """1 for a format-1 catalogue (no ``roots`` table, a ``files`` table), else 2 (new or current)."""
    names = table_names(db)
    return 1 if "files" in names and "roots" not in names else CATALOGUE_FORMAT


def upgrade_v1(db: sqlite3.Connection, fault=None) -> None:
    """Rewrite a format-1 catalogue as format 2 in one transaction (a kill leaves format 1 whole).

    Every vector becomes *pending*: the next vector-file refresh writes them into a new vector file
    and clears them here. Paths stay absolute (root 0) until their folder is indexed again, when
    :meth:`Catalogue.add_root` makes them relative without re-reading a picture.
    """
    db.commit()
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE files RENAME TO files_v1")
        db.execute("DROP INDEX IF EXISTS files_sha256")
        for statement in SCHEMA.split(";"):  # not executescript: it would commit half-way
            if statement.strip():
                db.execute(statement)
        db.execute(
            """INSERT INTO files (id, root, path, size, mtime_ns, sha256, status, reason)
               SELECT id, 0, path, size, mtime_ns,
                      CASE WHEN sha256 IS NULL THEN NULL ELSE unhex(sha256) END, status, reason
               FROM files_v1"""
        )
        db.execute("INSERT INTO pending (id, vector) SELECT id, vector FROM files_v1 "
                   "WHERE status = 'ok' AND vector IS NOT NULL")
        if fault is not None:
            fault("during-upgrade")
        db.execute("DROP TABLE files_v1")
        marks = ",".join("?" * len(V1_META_DROPPED))
        db.execute(f"DELETE FROM meta WHERE key IN ({marks})", V1_META_DROPPED)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format_version', ?)", (str(CATALOGUE_FORMAT),))
        db.commit()
    except BaseException:
        db.rollback()
        raise


def register_functions(db: sqlite3.Connection) -> None:
    """SQL functions the upgrade needs on SQLite builds older than 3.41 (``unhex``), and the folder of
    a stored path (``imgret_folder``) that rebuilding the ``folders`` table needs."""
    db.create_function("unhex", 1, lambda text: bytes.fromhex(text) if text else None, deterministic=True)
    db.create_function("imgret_folder", 1, folder_of, deterministic=True)


def folder_of(stored: bytes) -> bytes:
    """The folder part of a stored path, as ``folders.path`` keeps it: ``b"a/b"`` for ``b"a/b/c.jpg"``,
    ``b""`` for ``b"c.jpg"``."""
    cut = bytes(stored).rfind(os.fsencode(os.sep))
    return bytes(stored[:cut]) if cut >= 0 else b""
