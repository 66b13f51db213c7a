"""Helpers for the reliability tests: run the real CLI as a child process, and read a library raw.

Reading goes straight to SQLite (read-only URI), not through :class:`imgret.runtime.library.Library`,
so a snapshot shows exactly what was committed, byte for byte.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
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
    """``python -m imgret ARGS`` in a child process; fails the test (no hang) past ``timeout``."""
    out = subprocess.run(
        [sys.executable, "-m", "imgret", *[os.fspath(a) for a in args]],
        capture_output=True,
        timeout=timeout,
        env=env if env is not None else child_env(),
        stdin=subprocess.DEVNULL,
        **kw,
    )
    return Child(out.returncode, out.stdout.decode("utf-8", "replace"), out.stderr.decode("utf-8", "replace"))


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
    """Every catalogue row keyed by raw path bytes: (size, mtime_ns, sha256, status, reason, vector)."""
    if not (libdir / "catalogue.sqlite").exists():
        return {}
    db = connect(libdir)
    try:
        rows = db.execute("SELECT path, size, mtime_ns, sha256, status, reason, vector FROM files").fetchall()
    except sqlite3.OperationalError as exc:  # no tables yet: killed before the schema was committed
        if "no such table" in str(exc):
            return {}
        raise
    finally:
        db.close()
    return {bytes(r[0]): (r[1], r[2], r[3], r[4], r[5], None if r[6] is None else bytes(r[6])) for r in rows}


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
