"""The one way files become vectors in bulk: decode in worker processes, embed in batches.

Indexing, bulk vectors for evaluation (:func:`imgret.runtime.search.vectors_for`) and anything else
that embeds many files go through :func:`prepared_stream` and :class:`EmbedBatcher`, so the batch
size and the worker rules are written once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np

from imgret.runtime.encoder import Encoder
from imgret.runtime.prepare import Prepared, prepare, prepare_many

CHUNK = 16  # files per worker task
BATCH = 32  # pictures per encoder call
Tag = TypeVar("Tag")


def prepared_stream(paths: list[str], size: int, workers: int | None = None) -> Iterator[Prepared]:
    """Yield a :class:`Prepared` for each path, in order; spawned worker processes for large jobs.

    ``workers=None`` means the CPU count (at most 8); 0 or 1 decodes in this process.
    """
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(paths) < 4 * CHUNK:
        for p in paths:
            yield prepare(p, size)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(paths[i:i + CHUNK], size) for i in range(0, len(paths), CHUNK)]
    # spawn, not fork: a forked child of a process that imported usearch was seen to hang in onnxruntime.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        for batch in pool.map(prepare_many, chunks):
            yield from batch


class EmbedBatcher(Generic[Tag]):
    """Collects ``(tag, pixels)`` pairs and embeds them :data:`BATCH` at a time.

    Each vector is handed to ``deliver(tag, vector)`` in the order the pairs were added; call
    :meth:`flush` before relying on every vector having been delivered.
    """

    def __init__(self, encoder: Encoder, deliver: Callable[[Tag, np.ndarray], None], *, size: int = BATCH) -> None:
        self.encoder, self.deliver, self.size = encoder, deliver, size
        self.pending: list[tuple[Tag, np.ndarray]] = []

    def add(self, tag: Tag, pixels: np.ndarray) -> None:
        """Queue one preprocessed picture; embeds the batch once it is full."""
        self.pending.append((tag, pixels))
        if len(self.pending) >= self.size:
            self.flush()

    def tags(self) -> list[Tag]:
        """The tags still waiting to be embedded."""
        return [tag for tag, _ in self.pending]

    def flush(self) -> None:
        """Embed and deliver everything queued."""
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        vecs = self.encoder.embed_arrays(np.stack([px for _, px in batch]))
        for (tag, _), vec in zip(batch, vecs):
            self.deliver(tag, vec)
