"""The one way files become vectors in bulk: decode in worker processes, embed in batches.

Indexing, bulk vectors for evaluation (:func:`imgret.runtime.search.vectors_for`) and anything else
that embeds many files go through :func:`prepared_stream` and :class:`EmbedBatcher`, so the batch
size and the worker rules are written once.

Decoding runs in spawned worker processes while this process embeds and writes. At most
:data:`AHEAD` chunks per worker are submitted ahead of the one being consumed: decoded pictures
cannot pile up when the encoder or the writer is slower than the decoders (memory stays flat however
large the folder), and the decoders never wait when it is faster. Workers die with this process
(:mod:`imgret.runtime.lifeline`), so a killed run leaves no process behind. :func:`meanwhile` runs
what a run needs only after its last picture (e.g. loading the vector file's library) while it embeds.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import numpy as np

from imgret.runtime.encoder import Encoder
from imgret.runtime.prepare import Prepared, prepare, prepare_many

CHUNK = 16  # files per worker task
AHEAD = 2  # chunks submitted per worker beyond the one being consumed
BATCH = 32  # pictures per encoder call
Tag = TypeVar("Tag")


def default_workers() -> int:
    """Decoding processes when none is asked for: the CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` means :func:`default_workers`; 0 and 1 both mean "decode in this process"."""
    return default_workers() if workers is None else max(0, int(workers))


def encoder_threads(workers: int | None) -> int | None:
    """onnxruntime intra-op threads for the encoder of a run that decodes with ``workers`` processes.

    With decode workers on every core, a multi-threaded encoder only steals their time: its threads
    spin while they wait (measured: 2.8 ms of CPU per picture with onnxruntime's default threads
    against 1.5 ms with one thread, while the decoders were busy). One thread then; ``None``
    (onnxruntime's choice) when this process decodes alone and the encoder has the machine to itself.
    """
    return 1 if resolve_workers(workers) > 1 else None


def prepared_stream(paths: list[str], size: int, workers: int | None = None) -> Iterator[Prepared]:
    """Yield a :class:`Prepared` for each path, in order; spawned worker processes for large jobs.

    ``workers=None`` means the number of CPU cores; 0 or 1 decodes in this process.
    """
    workers = resolve_workers(workers)
    if workers <= 1 or len(paths) < 4 * CHUNK:
        for p in paths:
            yield prepare(p, size)
        return
    yield from _pooled(paths, size, workers)


def _pooled(paths: list[str], size: int, workers: int) -> Iterator[Prepared]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from imgret.runtime.lifeline import die_with_parent

    chunks = ((paths[i:i + CHUNK], size) for i in range(0, len(paths), CHUNK))
    # spawn, not fork: a forked child of a process that imported usearch was seen to hang in onnxruntime.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        yield from in_order_bounded(lambda chunk: pool.submit(prepare_many, chunk), chunks,
                                    window=workers * (1 + AHEAD), result=lambda fut: fut.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def meanwhile(work: Callable[[], object] | None) -> Iterator[None]:
    """Run ``work`` (when given) in a thread while the body runs; joined when the body ends.

    For what the end of a run needs anyway, such as importing usearch to write the vector file
    (~0.1 s of CPU): at the end of a run it is serial time with one core idle; during the run it
    shares the CPU with the decoders, and on small pictures that tail was a tenth of the run. Its
    errors are dropped: whoever needs its result calls it again and gets them then.
    """
    if work is None:
        yield
        return

    def run() -> None:
        with contextlib.suppress(Exception):
            work()

    thread = threading.Thread(target=run, name="imgret-meanwhile", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def in_order_bounded(submit, items, *, window: int, result) -> Iterator:
    """Submit ``items`` with ``submit`` keeping at most ``window`` unfinished, and yield each one's
    ``result(handle)`` (a list) item by item, in submission order.

    Shared by the local worker pool and the cluster (:mod:`imgret.runtime.cluster`): the bound on work
    in flight is what keeps memory flat, so it is written once.
    """
    pending: deque = deque()
    items = iter(items)
    exhausted = False
    while True:
        while not exhausted and len(pending) < window:
            item = next(items, None)
            if item is None:
                exhausted = True
            else:
                pending.append(submit(item))
        if not pending:
            return
        yield from result(pending.popleft())


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
