"""The one progress type: indexing, evaluation, training and export all report through it.

Library code takes ``progress`` as a plain callable ``progress(done, total, note="")`` and never draws
anything itself; the CLI passes a :class:`Progress`, which draws one line on stderr. The time left is
estimated from a moving window of recent work, not from the first items, so a slow start (large
pictures first, a model loading) does not make the estimate wildly wrong.
"""

from __future__ import annotations

import collections
import sys
import time
from typing import Protocol, TextIO


class ProgressCallback(Protocol):
    """What library functions accept as ``progress``."""

    def __call__(self, done: int, total: int, note: str = "") -> None: ...


class Progress:
    """Draws ``label [####----] done/total  rate unit/s  ETA m:ss  note`` on ``stream``.

    On a terminal the line is redrawn in place a few times a second; in a log file a plain line is
    written every ``log_every`` seconds. ``enabled=None`` means "when the stream is a terminal".
    """

    WINDOW_SECONDS = 20.0

    def __init__(
        self,
        label: str,
        *,
        unit: str = "files",
        enabled: bool | None = None,
        stream: TextIO | None = None,
        log_every: float = 30.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = self.tty if enabled is None else enabled
        self.label, self.unit = label, unit
        self.every = 0.2 if self.tty else log_every
        self.start = time.monotonic()
        self.last = float("-inf")
        self.drawn = False
        self._window: collections.deque[tuple[float, int]] = collections.deque()

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = time.monotonic()
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[0][0] > self.WINDOW_SECONDS:
            self._window.popleft()
        if not self.enabled or (now - self.last < self.every and done < total):
            return
        self.last = now
        rate = self.rate()
        eta = (total - done) / rate if rate > 0 else None
        width = 24
        filled = int(width * done / total) if total else width
        text = f"{self.label} [{'#' * filled}{'-' * (width - filled)}] {done}/{total}  {rate:.1f} {self.unit}/s"
        text += f"  ETA {clock(eta)}" if eta is not None else "  ETA --:--"
        if note:
            text += f"  {note}"
        self.stream.write(("\r" + text + " ") if self.tty else text + "\n")
        self.stream.flush()
        self.drawn = True

    def rate(self) -> float:
        """Items per second over the recent window (over the whole run while the window is short)."""
        if len(self._window) >= 2:
            (t0, d0), (t1, d1) = self._window[0], self._window[-1]
            if t1 - t0 > 1e-6 and d1 > d0:
                return (d1 - d0) / (t1 - t0)
        done = self._window[-1][1] if self._window else 0
        return done / max(time.monotonic() - self.start, 1e-6)

    def close(self, note: str = "") -> None:
        """End the line (on a terminal), optionally with a closing note."""
        if self.enabled and (self.drawn or note):
            self.stream.write((f" {note}" if note else "") + "\n")
            self.stream.flush()


def clock(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    if seconds is None:
        return "--:--"
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
