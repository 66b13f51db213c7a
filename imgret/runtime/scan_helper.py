"""The walk helper process of :mod:`imgret.runtime.scan_split`, and the format of what it sends back.

Started as ``python -S -c`` by :meth:`~imgret.runtime.scan_split.WalkHelper.start`, it imports only
this module, ``scan.py`` and ``lifeline.py``: no numpy, no Pillow (the picture suffixes come with its
part of the walk), nothing of the program that started it. Its part comes on stdin and its result
goes to stdout, both ``marshal`` (no pickle), then it exits.
"""

from __future__ import annotations

import marshal
import os
import sys
import time

from imgret.runtime.scan import Found, Listing, NotAPicture, Skipped, _Walk

FAULT_ENV = "IMGRET_WALK_HELPER_FAULT"  # tests: "hang", "die" or "garbage" makes the helper misbehave


def helper_main(parent_pid: int) -> None:
    """The helper: read its part of a walk from stdin, walk it, write the result to stdout, exit."""
    import gc
    import signal

    from imgret.runtime.lifeline import die_with_parent

    die_with_parent(parent_pid)
    # Ctrl-C in a terminal reaches the whole process group: the parent ends the helper itself, and a
    # traceback from the helper would only clutter the user's screen.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.disable()  # short-lived, and the walk makes a tuple per picture: collections would only cost
    out, sys.stdout = sys.stdout.buffer, sys.stderr  # stdout carries the result, and nothing else
    try:
        job = marshal.loads(sys.stdin.buffer.read())
        reply = marshal.dumps(walk_part(*job), 2)
    except (EOFError, ValueError, TypeError, OSError):
        return  # not needed, or its root is gone: the parent walks alone and says why
    fault = os.environ.get(FAULT_ENV)
    if fault == "hang":
        time.sleep(3600)
    elif fault == "die":
        os._exit(1)
    elif fault == "garbage":
        reply = b"\xffnot marshal"
    out.write(reply)
    out.flush()


def walk_part(root: str, dev: int, follow_outside: bool, exclude: list[str], suffixes: list[str],  # noqa: PLR0913
              stack: list[str], signatures: dict, seen_dirs: list, seen_files: list) -> tuple:
    """Walk ``stack`` below ``root`` as the serial walk would after its seen sets (``seen_dirs``,
    ``seen_files``); returns ``(records, dirs, files)``: the items as plain tuples (:func:`record`)
    and the inode keys this walk added to each seen set."""
    walk = _Walk(root, os.stat(root), follow_outside, tuple(exclude), signatures, frozenset(suffixes))
    walk.dev, walk.seen_dirs, walk.seen_files = dev, set(seen_dirs), set(seen_files)
    records = [record(item) for item in walk.run(stack)]
    return records, list(walk.seen_dirs.difference(seen_dirs)), list(walk.seen_files.difference(seen_files))


def record(item: Listing | Skipped) -> tuple:
    """An item as plain tuples for ``marshal`` (which takes no named tuples or dataclasses): a folder
    that could not be listed as ``(path, reason)``, a listing as its six fields, its pictures as
    ``(path, size, mtime_ns, (dev, ino))``, what it passed over as ``(path, reason, not a picture)``."""
    if type(item) is not Listing:
        return item.path, item.reason
    found = None if item.found is None else [tuple(f) for f in item.found]
    skipped = [(s.path, s.reason, type(s) is NotAPicture) for s in item.skipped]
    return item.folder, found, skipped, item.signature, item.unchanged, item.subfolders


def item(record: tuple) -> Listing | Skipped:
    """The item a :func:`record` was made from (raises ``TypeError`` or ``ValueError`` on garbage)."""
    if len(record) == 2:
        return Skipped(*record)
    folder, found, skipped, signature, unchanged, subfolders = record
    if found is not None:
        found = [Found(path, size, mtime_ns, (dev, ino)) for path, size, mtime_ns, (dev, ino) in found]
    skipped = [NotAPicture(path, reason) if other else Skipped(path, reason) for path, reason, other in skipped]
    return Listing(folder, found, skipped, signature, unchanged, subfolders)
