"""Builds a format-1 library exactly as imgret wrote it before format 2 (the schema, meta keys and
vector file of ``catalogue.py`` / ``library.py`` / ``vector_file.py`` at CATALOGUE_FORMAT 1), so tests
can check that such a library is read as it is and upgraded in place."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path

import numpy as np

V1_SCHEMA = """
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


def write_v1_library(libdir: Path, pictures: list[Path], model: Path, *, skipped: list[Path] = ()) -> None:
    """A format-1 library of ``pictures`` embedded with ``model`` (recorded by absolute path, as v1 did),
    with a fresh ``vectors.usearch`` whose checksum the catalogue records."""
    from imgret.runtime.vectors import usearch_index_class

    Index = usearch_index_class()  # noqa: N806 - onnxruntime must load first (see there)

    from imgret.runtime.encoder import Encoder

    encoder = Encoder(model)
    libdir.mkdir(parents=True)
    db = sqlite3.connect(libdir / "catalogue.sqlite")
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(V1_SCHEMA)
    info = encoder.info
    meta = dict(format_version=1, model_ref=str(Path(model).resolve()), model_id=info.model_id,
                model_fingerprint=encoder.fingerprint, input_size=info.input_size, resize="stretch-bilinear",
                embedding_dim=info.embedding_dim, metric=info.metric, created=time.time(),
                catalogue_generation=3, updated=time.time())
    keys, vecs = [], []
    for p in pictures:
        st = os.stat(p)
        vec = encoder.embed([str(p)])[0].astype(np.float32)
        cur = db.execute(
            "INSERT INTO files (path, size, mtime_ns, sha256, status, reason, vector, updated) "
            "VALUES (?, ?, ?, ?, 'ok', NULL, ?, ?)",
            (os.fsencode(os.path.abspath(p)), st.st_size, st.st_mtime_ns,
             hashlib.sha256(Path(p).read_bytes()).hexdigest(), vec.tobytes(), time.time()))
        keys.append(cur.lastrowid)
        vecs.append(vec)
    for p in skipped:
        st = os.stat(p)
        db.execute("INSERT INTO files (path, size, mtime_ns, sha256, status, reason, vector, updated) "
                   "VALUES (?, ?, ?, NULL, 'skipped', 'not-an-image', NULL, ?)",
                   (os.fsencode(os.path.abspath(p)), st.st_size, st.st_mtime_ns, time.time()))
    index = Index(ndim=info.embedding_dim, metric="cos", dtype="f32")
    index.add(np.asarray(keys, dtype=np.uint64), np.vstack(vecs))
    data = bytes(index.save())
    (libdir / "vectors.usearch").write_bytes(data)
    meta.update(index_generation=3, index_count=len(keys), index_sha256=hashlib.sha256(data).hexdigest(),
                index_size=len(data), index_built_at=repr(time.time()))
    db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
    db.commit()
    db.close()
