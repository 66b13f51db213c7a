"""Where a training run reports: one-line notes and progress lines on a text stream (stderr in the
CLI), or nowhere. Progress lines are :class:`imgret.runtime.progress.Progress`, the one progress type."""

from __future__ import annotations

from typing import TextIO

from imgret.runtime.progress import Progress


class Notes:
    """Notes and progress lines for ``stream``; silent when ``stream`` is None."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def say(self, text: str) -> None:
        """Write one line."""
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()

    def progress(self, label: str, unit: str) -> Progress:
        """A progress line (``progress(done, total, note="")``, then ``close(note)``). Drawn in log
        files too, every half minute, so a run's log shows how it went."""
        return Progress(label, unit=unit, enabled=self.stream is not None, stream=self.stream)
