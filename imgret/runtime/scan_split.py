"""Walking a big tree in two processes: a helper process walks the last subtrees while this one
walks the first, and what is yielded is exactly what the serial walk (:class:`~imgret.runtime.scan.Scan`)
gives, in the same order.

Why: an index run with nothing changed is a walk (99% of it by cProfile), two thirds of a walk are
system calls, and the walk of one subtree does not depend on another's. On a machine with a second
core, a second process takes about half of the wall time off such a run.

How:
- The serial walk goes depth first from a stack; at any moment the folders on the stack are the roots
  of all that is left, the next one on top. After listing the first folder(s), this process cuts the
  stack: the helper takes the bottom (the last subtrees in walk order), this process the top, which
  it walks and yields as it goes. The helper's part comes after it in walk order: its listings are
  sent at its end and yielded then. The cut is weighed with the folders the catalogue recorded below
  each subtree (the signatures handed to the walk).
- A file (hard links) or folder (linked folders) is taken at its first sight only, so a side's result
  depends on what was seen before it. Both sides start from the seen sets at the cut, and the helper
  sends back the inode keys it added. If they meet this process's (a hard link or a linked folder
  across the cut: rare), the helper's listings are dropped and this process walks its part itself,
  continuing its own seen sets: that is the serial walk exactly. The same when the helper dies, hangs
  (no answer :data:`WAIT_FACTOR` times as long as this process's own part took, and at least
  :data:`WAIT_MIN` seconds) or sends what cannot be read: correct, only slower.
- Worth it only for big trees (:func:`walk_helper`): starting the helper costs ~0.1 s before it can
  walk (on another core), which a tree of 10k pictures would not win back. It is started before the
  catalogue is asked for the signatures, so that its start overlaps this process's own work.
- The helper (:mod:`imgret.runtime.scan_helper`) is a new interpreter (``python -S -c``; no fork:
  onnxruntime and usearch may be loaded here, and a forked child of such a process was seen to hang)
  that imports no numpy or Pillow (the picture suffixes are sent), dies with its parent
  (:mod:`imgret.runtime.lifeline`) and gets its part on stdin and gives its result on stdout, both
  ``marshal`` (no pickle). In an app frozen into one executable there is no such interpreter to
  start, and the walk stays in one process.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from imgret.runtime.scan import Listing, Skipped, _Walk
from imgret.runtime.scan_helper import item

if TYPE_CHECKING:
    import subprocess
    import threading

MIN_PICTURES = 30_000  # pictures the catalogue knows below which a run walks in one process
HELPER_ENV = "IMGRET_WALK_HELPER"  # "on" or "off": overrides worth_a_helper
MIN_FOLDERS = 4  # recorded folders left below which the stack is not cut (and the helper not used)
# The helper's share of the recorded folders left: half, less its start (~0.1 s of CPU before it
# walks) against a walk's cost per picture (~7 us on a 2-core laptop with the files cached), so that
# both sides end together: 0.43 at 100k pictures, 0.49 at 1M.
START_S, WALK_S_PER_PICTURE = 0.1, 7e-6
SHARE_RANGE = (0.3, 0.6)  # a cut outside it waits for a deeper one
MAX_TRIES = 256  # folders listed while looking for a cut; then the walk goes on in this process alone
WAIT_FACTOR, WAIT_MIN = 3.0, 10.0  # when a helper is given up (see the module docstring)


@contextlib.contextmanager
def walk_helper(pictures: int, workers: int | None = None) -> Iterator[WalkHelper | None]:
    """A started :class:`WalkHelper` for a walk over about ``pictures`` pictures when it is worth it
    (:func:`worth_a_helper`) and possible (:meth:`WalkHelper.start`); ``None`` otherwise. Closed when
    the block ends."""
    helper = WalkHelper.start() if worth_a_helper(pictures, workers) else None
    if helper is not None:
        helper.share = helper_share(pictures)
    try:
        yield helper
    finally:
        if helper is not None:
            helper.close()


def worth_a_helper(pictures: int, workers: int | None = None) -> bool:
    """Whether a second process should walk: ``workers`` is not 0 or 1, the walk is big (at least
    :data:`MIN_PICTURES`) and a core is free (:func:`others_running`): with the other cores busy the
    helper only competes with this process (measured at 100k with another job on one of 2 cores:
    0.75-1.10 s against 0.52-0.76 s walking alone). :data:`HELPER_ENV` set to ``on`` or ``off``
    decides instead (benchmarks, tests)."""
    forced = os.environ.get(HELPER_ENV, "").lower()
    if forced in ("on", "off"):
        return forced == "on"
    from imgret.runtime.batching import default_workers, resolve_workers

    if pictures < MIN_PICTURES or resolve_workers(workers) <= 1:
        return False
    return default_workers() - 1 - others_running() >= 1  # a core for the helper, besides this process's


def others_running(samples: int = 3) -> float:
    """About how many other tasks are running or waiting for a core now. On Linux the kernel's count of
    runnable tasks (``/proc/loadavg``) less this process, the least of a few samples a millisecond
    apart (a short task passing by should not decide); elsewhere the load average (which counts this
    process too, so it errs towards walking alone); 0 where neither exists (Windows)."""
    try:
        counts = []
        for i in range(samples):
            if i:
                time.sleep(0.001)
            with open("/proc/loadavg", "rb") as f:
                counts.append(int(f.read().split()[3].split(b"/")[0]))
        return max(0, min(counts) - 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


class WalkHelper:
    """The helper process: its part of a walk goes in on its stdin, the result comes back on its stdout."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.outcome = "not asked"  # then "not needed", "helped" or "walked alone" (read by tests)
        self.share = 0.5  # of the walk (see helper_share)
        self._writer: threading.Thread | None = None

    @classmethod
    def start(cls) -> WalkHelper | None:
        """Start the helper; it waits for its part (see :func:`split_walk`). ``None`` where no Python
        can be started: in an app frozen into one executable (``sys.frozen``), or with no
        ``sys.executable``.

        Not multiprocessing's spawn: it would also run this program's main module again in the
        helper, start multiprocessing's resource tracker (one more interpreter) and pickle. The helper
        is ``python -S`` (``site`` is not needed: imgret's own folder is put on its path) running
        :func:`~imgret.runtime.scan_helper.helper_main`: ~0.08 s of CPU before it walks, on another core."""
        # On Windows a virtual environment's python.exe is a launcher that starts the real one as its
        # child: the helper's parent would not be this process. Its base interpreter is started
        # instead (as multiprocessing does); imgret's folder is put on the path either way.
        python = getattr(sys, "_base_executable", None) if sys.platform == "win32" else None
        python = python or sys.executable
        if getattr(sys, "frozen", False) or not python:
            return None
        import subprocess  # here, not at the top: imgret --help and a small walk need neither

        home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds imgret/
        code = (f"import sys; sys.path.insert(0, {home!r}); "
                f"from imgret.runtime.scan_helper import helper_main; helper_main({os.getpid()})")
        try:
            process = subprocess.Popen([python, "-S", "-c", code], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE)
        except OSError:
            return None
        return cls(process)

    def send(self, job: tuple) -> None:
        """Hand the helper its part, from a thread: a big part fills the pipe before the helper reads it."""
        import threading

        def write() -> None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.write(marshal.dumps(job, 2))
                self.process.stdin.close()

        self._writer = threading.Thread(target=write, name="imgret-walk-job", daemon=True)
        self._writer.start()

    def reply(self, timeout: float) -> object | None:
        """The helper's answer, or ``None`` when it died, did not answer in ``timeout`` seconds, or
        sent something that is not marshal data."""
        import threading

        got: list[bytes] = []

        def read() -> None:
            with contextlib.suppress(OSError, ValueError):
                got.append(self.process.stdout.read())

        reader = threading.Thread(target=read, name="imgret-walk-reply", daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():  # hung: ending it ends the read
            self.close()
            reader.join()
            return None
        try:
            return marshal.loads(got[0])
        except (IndexError, EOFError, ValueError, TypeError):
            return None

    def split(self, walk: _Walk) -> Iterator[Listing | Skipped]:
        """What ``walk`` yields, part of it walked by this helper (see :func:`split_walk`)."""
        return split_walk(walk, self)

    def close(self) -> None:
        """End the helper, whatever it is doing (it has nothing to save); idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._writer is not None:
            self._writer.join()
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError, ValueError):
                pipe.close()


def split_walk(walk: _Walk, helper: WalkHelper) -> Iterator[Listing | Skipped]:
    """What ``walk.run([walk.root])`` yields, with part of it walked by ``helper`` (closed at the end)."""
    stack = [walk.root]
    try:
        keys = sorted(walk.signatures)
        cut, tries = None, 0
        while stack and cut is None and tries < MAX_TRIES:
            yield walk.step(stack)
            cut, tries = _cut(stack, keys, helper.share), tries + 1
        if cut is None:
            helper.outcome = "not needed"
            helper.close()  # now: it is not needed
            yield from walk.run(stack)
            return
        theirs, stack = stack[:cut], stack[cut:]
        started = time.monotonic()
        helper.send(_job(walk, theirs, keys))
        yield from walk.run(stack)
        reply = helper.reply(max(WAIT_MIN, WAIT_FACTOR * (time.monotonic() - started)))
        helper.close()  # done, or given up
        items = _accepted(reply, walk)
        if items is None:  # the serial walk from here, with this process's seen sets
            helper.outcome = "walked alone"
            yield from walk.run(theirs)
            return
        helper.outcome = "helped"
        pop = walk.signatures.pop
        for item in items:
            if type(item) is Listing:
                pop(item.folder, None)
            yield item
    finally:
        helper.close()


def helper_share(pictures: int) -> float:
    """What part of a walk of about ``pictures`` pictures the helper should take (see :data:`START_S`)."""
    share = 0.5 - START_S / (2 * max(1, pictures) * WALK_S_PER_PICTURE)
    return min(0.5, max(SHARE_RANGE[0], share))


def _below(keys: list[str], folder: str) -> tuple[int, int]:
    """The range of ``keys`` (sorted) at or below ``folder``: the folder itself, then ``folder/...``."""
    after = folder + chr(ord(os.sep) + 1)  # the first string past every "folder/..."
    return bisect_left(keys, folder), bisect_left(keys, after)


def _cut(stack: list[str], keys: list[str], target: float) -> int | None:
    """How many of the stack's bottom entries to give the helper (about ``target`` of the weight), or
    ``None`` when no cut is good enough yet: the walk then goes one folder deeper and asks again."""
    if len(stack) < 2:
        return None
    weights = [1 + (hi - lo) for lo, hi in (_below(keys, folder) for folder in stack)]
    total = sum(weights)
    if total - len(stack) < MIN_FOLDERS:
        return None
    best, best_gap, share = None, None, 0
    for k in range(1, len(stack)):
        share += weights[k - 1]
        gap = abs(share / total - target)
        if SHARE_RANGE[0] <= share / total <= SHARE_RANGE[1] and (best_gap is None or gap < best_gap):
            best, best_gap = k, gap
    return best


def _job(walk: _Walk, theirs: list[str], keys: list[str]) -> tuple:
    """What the helper needs to walk ``theirs`` as the serial walk would (see
    :func:`~imgret.runtime.scan_helper.walk_part`)."""
    signatures = walk.signatures
    own = {}
    for folder in theirs:
        lo, hi = _below(keys, folder)
        own.update((key, signatures[key]) for key in keys[lo:hi] if key in signatures)
    return (walk.root, walk.dev, walk.follow_outside, sorted(walk.excluded), sorted(walk.suffixes), theirs, own,
            list(walk.seen_dirs), list(walk.seen_files))


def _accepted(reply: object, walk: _Walk) -> list[Listing | Skipped] | None:
    """The helper's listings, or ``None`` when they cannot be taken: not readable, or a file or folder
    seen by both processes (the serial walk would have taken it once)."""
    if type(reply) is not tuple or len(reply) != 3:
        return None
    records, dirs, files = reply
    try:
        if not walk.seen_dirs.isdisjoint(dirs) or not walk.seen_files.isdisjoint(files):
            return None
        return [item(record) for record in records]
    except (TypeError, ValueError):
        return None
