"""A minimal progress line for stderr: ``label [#####.....] 12/40 loss 0.0123 3.1 it/s``."""

from __future__ import annotations

import time
from typing import TextIO


class ProgressLine:
    """Redraws one line on ``stream`` (at most ten times a second); silent when ``stream`` is None."""

    def __init__(self, stream: TextIO | None, label: str, total: int, width: int = 24) -> None:
        self.stream, self.label, self.total, self.width = stream, label, max(total, 1), width
        self.start = self.last = time.monotonic()
        # On a terminal redraw in place; in a log file write a plain line every half minute instead.
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.every = 0.1 if self.tty else 30.0

    def update(self, done: int, loss: float | None = None) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if done < self.total and now - self.last < self.every:
            return
        self.last = now
        filled = int(self.width * done / self.total)
        rate = done / max(now - self.start, 1e-9)
        text = f"{chr(13) if self.tty else ''}{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
        if loss is not None:
            text += f" loss {loss:.5f}"
        self.stream.write(text + f" {rate:.1f} it/s " + ("" if self.tty else "\n"))
        self.stream.flush()

    def close(self, note: str = "") -> None:
        if self.stream is not None:
            self.stream.write(f" {note}\n" if note else "\n")
            self.stream.flush()
