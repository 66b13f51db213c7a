"""Printing results: aligned table, JSON lines, or bare paths."""

from __future__ import annotations

import base64
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


def json_path(key: str, path: str) -> dict[str, str]:
    """A path for JSON as ``{key: absolute path}``, exact whenever the name is valid UTF-8 (JSON
    escapes control characters itself). A name that is not valid UTF-8 gets a second key,
    ``KEY_b64``: the exact bytes of the absolute path, base64 (standard alphabet, padded); ``key``
    then holds a display form only, with each undecodable byte written as ``\\xNN``."""
    raw = os.fsencode(os.path.abspath(path))
    try:
        return {key: raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {key: raw.decode("utf-8", "backslashreplace"), f"{key}_b64": base64.b64encode(raw).decode("ascii")}


def path_from_json(row: dict, key: str) -> bytes:
    """The exact bytes of the path stored under ``key`` in a JSON row (see :func:`json_path`)."""
    if f"{key}_b64" in row:
        return base64.b64decode(row[f"{key}_b64"])
    return row[key].encode("utf-8")


def table(results) -> None:
    """Aligned rank, distance and (escaped) path; a ``# query`` heading when there are several."""
    several = len(results) > 1
    for result in results:
        if result.error is not None:  # reported on stderr, by the command
            continue
        if several:
            print(f"# {printable(result.query)}")
        if not result.hits:
            print("(no results)")
            continue
        width = len(str(len(result.hits)))
        for hit in result.hits:
            more = f"  +{len(hit.copies)} {'copy' if len(hit.copies) == 1 else 'copies'}" if hit.copies else ""
            print(f"{hit.rank:>{width}}  {hit.distance:8.4f}  {printable(hit.path)}{more}")


def json_lines(results) -> None:
    """One JSON object per hit: ``query`` and ``path`` (absolute; see :func:`json_path` for names that
    are not UTF-8), ``rank``, ``distance`` and ``copies`` (the hits folded into it, each with ``path``
    and its ``distance`` to the query; empty when none or when not folding)."""
    for result in results:
        query = json_path("query", result.query)
        for hit in result.hits:
            copies = [{**json_path("path", c.path), "distance": round(float(c.distance), 6)} for c in hit.copies]
            row = {**query, "rank": hit.rank, **json_path("path", hit.path),
                   "distance": round(float(hit.distance), 6), "copies": copies}
            print(json.dumps(row, ensure_ascii=False))


def paths(results, *, nul: bool) -> None:
    """Raw path bytes, one per line (or NUL-separated), so any file name survives a pipe."""
    out = sys.stdout.buffer
    sep = b"\0" if nul else b"\n"
    sys.stdout.flush()
    for result in results:
        for hit in result.hits:
            out.write(os.fsencode(hit.path) + sep)
    out.flush()


def query_failures(results) -> int:
    """One stderr line for each query picture that could not be read, naming it; returns how many."""
    failed = [r for r in results if r.error is not None]
    for result in failed:
        print(f"imgret: error: cannot read query picture {printable(result.query)}: {result.error}", file=sys.stderr)
    return len(failed)
