"""Helpers for the reliability tests: run the real CLI as a child process, and read a library raw.

Reading goes straight to SQLite (read-only URI), not through :class:`imgret.runtime.library.Library`,
so a snapshot shows exactly what was committed, byte for byte.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

TESTS = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    code: int
    stdout: str
    stderr: str


def child_env(**extra: str) -> dict[str, str]:
    """The environment for an ``imgret`` child: this one, minus fault hooks, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGRET_FAULT")}
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    env.update(extra)
    return env


def run_imgret(*args, timeout: float = 60, env: dict[str, str] | None = None, **kw) -> Child:
    """``python -m imgret ARGS`` in a child process; fails the test (no hang) past ``timeout``.

    The child is forked from a warm parent (:mod:`prefork`) unless ``subprocess`` options are given
    or the environment changes what Python reads at start-up; then it is a fresh interpreter."""
    env = env if env is not None else child_env()
    if not kw and _PREFORK.can_run(env):
        return _PREFORK.run(args, env, timeout)
    return fresh_imgret(*args, timeout=timeout, env=env, **kw)


def run_imgret_with_file_limit(*args, limit: int, timeout: float = 60) -> Child:
    """:func:`run_imgret` with RLIMIT_FSIZE at ``limit`` bytes and SIGXFSZ ignored, so a write past
    the limit fails with EFBIG, as a write to a full disk fails with ENOSPC."""
    return _PREFORK.run(args, child_env(), timeout, file_limit=limit)


def fresh_imgret(*args, timeout: float = 60, env: dict[str, str] | None = None, **kw) -> Child:
    """``python -m imgret ARGS`` in a freshly started interpreter (see :func:`run_imgret`)."""
    out = subprocess.run(
        [sys.executable, "-m", "imgret", *[os.fspath(a) for a in args]],
        capture_output=True,
        timeout=timeout,
        env=env if env is not None else child_env(),
        stdin=subprocess.DEVNULL,
        **kw,
    )
    return Child(out.returncode, out.stdout.decode("utf-8", "replace"), out.stderr.decode("utf-8", "replace"))


def _startup_keys(env: dict[str, str]) -> dict[str, str]:
    """The variables a Python interpreter reads when it starts (a forked child cannot re-read them)."""
    return {k: v for k, v in env.items() if k.startswith(("PYTHON", "LC_")) or k in ("LANG", "LANGUAGE")}


class Prefork:
    """The client of one warm :mod:`prefork` parent, started on first use, one per test process."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.base: dict[str, str] = {}
        self.folder: Path | None = None

    def can_run(self, env: dict[str, str]) -> bool:
        return _startup_keys(env) == _startup_keys(self.base if self.proc else child_env())

    def start(self) -> None:
        self.base = child_env()
        self.folder = Path(tempfile.mkdtemp(prefix="imgret-prefork-"))
        script = Path(__file__).with_name("prefork.py")
        with open(self.folder / "parent.err", "wb") as errors:
            self.proc = subprocess.Popen([sys.executable, str(script), str(self.folder)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=errors, env=self.base)
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError("prefork parent failed to start: " + self.parent_errors())
        atexit.register(self.close)

    def run(self, args, env: dict[str, str], timeout: float, *, file_limit: int | None = None) -> Child:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        out, err = self.folder / "out", self.folder / "err"
        hexed = [os.fsencode(os.fspath(a)).hex() for a in args]
        req = {"args": hexed, "env": {os.fsencode(k).hex(): os.fsencode(v).hex() for k, v in env.items()},
               "cwd": os.getcwd(), "stdout": str(out), "stderr": str(err), "timeout": timeout,
               "file_limit": file_limit}
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("prefork parent died: " + self.parent_errors())
        code = json.loads(reply)["code"]
        if code is None:
            raise subprocess.TimeoutExpired([sys.executable, "-m", "imgret", *args], timeout)
        return Child(code, out.read_bytes().decode("utf-8", "replace"), err.read_bytes().decode("utf-8", "replace"))

    def parent_errors(self) -> str:
        try:
            return (self.folder / "parent.err").read_text(errors="replace")
        except OSError:  # the parent removes its folder when it ends
            return "(its error output is gone with it)"

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_PREFORK = Prefork()


def start_imgret(*args, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "imgret", *[os.fspath(a) for a in args]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env if env is not None else child_env(),
        **kw,
    )


def connect(libdir: Path) -> sqlite3.Connection:
    uri = "file:" + quote(os.path.abspath(libdir / "catalogue.sqlite")) + "?mode=ro"
    return sqlite3.connect(uri, uri=True, timeout=30)


def snapshot(libdir: Path) -> dict[bytes, tuple]:
    """Every catalogue row keyed by its absolute path's raw bytes: (size, mtime_ns, sha256 as hex,
    status, reason, vector bytes). The vector is the pending copy in the catalogue, else the one in the
    vector file the catalogue names (format 2 stores each vector once); format 1 is read as it is."""
    if not (libdir / "catalogue.sqlite").exists():
        return {}
    db = connect(libdir)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "files" not in tables:  # killed before the schema was committed
            return {}
        if "roots" not in tables:  # format 1
            rows = db.execute("SELECT path, size, mtime_ns, sha256, status, reason, vector FROM files").fetchall()
            return {bytes(r[0]): (r[1], r[2], r[3], r[4], r[5], None if r[6] is None else bytes(r[6])) for r in rows}
        roots = {i: bytes(p) for i, p in db.execute("SELECT id, path FROM roots")}
        rows = db.execute("SELECT f.id, root, path, size, mtime_ns, sha256, status, reason, p.vector "
                          "FROM files f LEFT JOIN pending p ON p.id = f.id").fetchall()
        m = dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()
    settled = file_vectors(libdir, m)
    out = {}
    for key, root, path, size, mtime, sha, status, reason, vec in rows:
        full = bytes(path) if root == 0 else roots[root] + os.fsencode(os.sep) + bytes(path)
        vec = bytes(vec) if vec is not None else settled.get(key) if status == "ok" else None
        out[full] = (size, mtime, None if sha is None else bytes(sha).hex(), status, reason, vec)
    return out


def vector_file(libdir: Path, m: dict[str, str] | None = None) -> Path | None:
    """The vector file the catalogue names, or ``None``."""
    m = meta(libdir) if m is None else m
    return libdir / m["index_file"] if "index_file" in m else None


def file_vectors(libdir: Path, m: dict[str, str]) -> dict[int, bytes]:
    """key -> float32 vector bytes of every vector in the named vector file (empty when there is none)."""
    from imgret.runtime.vectors import usearch_index_class

    Index = usearch_index_class()  # noqa: N806 - onnxruntime must load first (see there)

    path = vector_file(libdir, m)
    if path is None or not path.exists():
        return {}
    index = Index.restore(str(path))
    keys = [int(k) for k in index.keys]
    return {k: index.get(k).astype("float32").tobytes() for k in keys}


def ok_vectors(libdir: Path) -> dict[bytes, bytes]:
    """Raw path bytes -> vector bytes for every ``ok`` row."""
    return {p: row[5] for p, row in snapshot(libdir).items() if row[3] == "ok"}


def meta(libdir: Path) -> dict[str, str]:
    db = connect(libdir)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def skipped_in_summary(stderr: str) -> dict[str, str]:
    """Parse ``index --verbose`` output into {printed path: reason}: the files recorded as skipped and
    those passed over for a reason (links, files that could not be opened), not those passed over
    for their suffix."""
    out: dict[str, str] = {}
    reason = None
    for line in stderr.splitlines():
        if line.startswith(("  skipped ", "  passed over ")):
            reason = line.split(": ", 1)[1].split(" (", 1)[0].strip()
            if reason.startswith((".", "(")):  # another suffix: not a picture at all
                reason = None
        elif line.startswith("    ") and reason is not None:
            out[line[4:]] = reason
        else:
            reason = None
    return out
