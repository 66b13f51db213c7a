"""Printing results: aligned table, JSON lines, or bare paths."""

from __future__ import annotations

import json
import os
import sys

_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def printable(path: str) -> str:
    """A path as safe text for tables, messages and JSON.

    Undecodable bytes become ``\\xNN`` escapes, and so do control characters (newline, tab, terminal
    escape sequences), so a hostile file name can neither break line-based output nor drive the
    terminal. ``--paths`` (``-0``) prints the raw bytes instead.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace").translate(_CONTROL)


def json_text(path: str) -> str:
    """A path for JSON: exact where it is valid UTF-8 (JSON escapes control characters itself)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def table(results) -> None:
    several = len(results) > 1
    for result in results:
        if several:
            print(f"# {printable(result.query)}")
        if not result.hits:
            print("(no results)")
            continue
        width = len(str(len(result.hits)))
        for hit in result.hits:
            print(f"{hit.rank:>{width}}  {hit.distance:8.4f}  {printable(hit.path)}")


def json_lines(results) -> None:
    for result in results:
        for hit in result.hits:
            print(
                json.dumps(
                    {
                        "query": json_text(result.query),
                        "rank": hit.rank,
                        "path": json_text(hit.path),
                        "distance": round(float(hit.distance), 6),
                    },
                    ensure_ascii=False,
                )
            )


def paths(results, *, nul: bool) -> None:
    """Raw path bytes, one per line (or NUL-separated), so any file name survives a pipe."""
    out = sys.stdout.buffer
    sep = b"\0" if nul else b"\n"
    sys.stdout.flush()
    for result in results:
        for hit in result.hits:
            out.write(os.fsencode(hit.path) + sep)
    out.flush()
