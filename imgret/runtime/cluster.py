"""Embedding on a Dask cluster: workers decode and encode, this process stays the only writer.

``imgret index FOLDER --cluster tcp://scheduler:8786`` (or ``--cluster local:N`` for a local cluster of
N processes) walks and decides what changed exactly as a plain run does; only the expensive part,
reading, decoding and encoding, is sent out. :class:`ClusterSource` is a drop-in
:data:`~imgret.runtime.indexer.PreparedSource`: chunks of paths go out as tasks, at most a few per
worker thread in flight (memory stays flat however large the folder), and each comes back as
:class:`~imgret.runtime.prepare.Prepared` records carrying vectors, hashes or skip reasons, in order,
for the indexer to commit in batches.

The model travels by content (a worker plugin, :mod:`imgret.runtime.cluster_worker`): its ONNX bytes go
to every worker, are checked against the library's fingerprint there, and each worker process keeps
one onnxruntime session for every task it runs. Workers must see the pictures under the same paths: a
probe on every worker reads a sample of the files before any task is sent.

Dask is the optional ``cluster`` extra and is imported only here, inside functions: base imgret never
imports it. Dask re-runs the tasks of a worker that dies; a lost scheduler ends the run with one
:class:`~imgret.errors.ClusterError` line, keeping what was committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from imgret.errors import ClusterError, MissingExtraError
from imgret.runtime.batching import in_order_bounded
from imgret.runtime.encoder import Encoder
from imgret.runtime.prepare import Prepared

# imgret is not on the package index yet: name what works today (Dask itself), and the extra in a clone.
INSTALL_HINT = "pip install 'dask[distributed]>=2026.8' (in a clone of imgret: pip install '.[cluster]')"
LOCAL_PREFIX = "local:"
CHUNK = 32  # files per task: large enough that a task's overhead is small beside decoding it
AHEAD = 2  # tasks submitted per worker thread beyond the ones running
PROBE_SAMPLE = 8  # files every worker must read before any task is sent
CONNECT_SECONDS = 30
CLOSE_SECONDS = 5


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise MissingExtraError(f"--cluster needs Dask: {INSTALL_HINT}") from exc
    return distributed


@contextlib.contextmanager
def open_cluster(address: str | None) -> Iterator[ClusterSource | None]:
    """Connect to the Dask scheduler at ``address`` (or start ``local:N``); ``None`` yields ``None``."""
    if not address:
        yield None
        return
    _distributed()
    # Dask logs every reconnect attempt with a traceback; a lost scheduler is reported by us in one line.
    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        client, local = _connect(address)
        try:
            yield ClusterSource(client, address)
        finally:
            # Bounded: after a lost scheduler, closing would otherwise wait out Dask's long timeouts.
            with contextlib.suppress(Exception):
                client.close(timeout=CLOSE_SECONDS)
            if local is not None:
                with contextlib.suppress(Exception):
                    local.close(timeout=CLOSE_SECONDS)
                # Closed or given up on above: distributed's exit hook would otherwise try again and,
                # after a lost scheduler, hold the process's exit for another 10 s timeout.
                local.shutdown_on_close = False
    finally:
        log.setLevel(level)


def _connect(address: str):
    distributed = _distributed()
    if address.startswith(LOCAL_PREFIX):
        return _start_local(distributed, address)
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the dask scheduler at {address} ({_first_line(exc)})") from exc
    try:
        client.wait_for_workers(1, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ClusterError(f"no dask worker joined the scheduler at {address} within {CONNECT_SECONDS}s") from exc
    return client, None


def _start_local(distributed, address: str):
    try:
        count = int(address[len(LOCAL_PREFIX):])
    except ValueError:
        count = 0
    if count < 1:
        raise ClusterError(f"--cluster {address}: expected local:N with N >= 1 worker processes")
    import dask

    # spawn, not fork: a forked child of a process that imported usearch hangs in `import onnxruntime`.
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}), warnings.catch_warnings():
        # No dashboard is started, but the scheduler's small HTTP server falls back to a free port when
        # another cluster holds the default one, and says so: not worth a line on the user's screen.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        local = distributed.LocalCluster(n_workers=count, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.CRITICAL)
    return distributed.Client(local, set_as_default=False), local


class ClusterSource:
    """Decodes and embeds files on a Dask cluster; call :meth:`for_encoder` for the indexer's ``source``."""

    def __init__(self, client, address: str, *, chunk: int = CHUNK) -> None:
        """``client``: a connected ``distributed.Client``; ``address`` names the cluster in messages."""
        self.client, self.address, self.chunk = client, address, chunk

    def for_encoder(self, encoder: Encoder):
        """A :data:`~imgret.runtime.indexer.PreparedSource` that embeds with ``encoder``'s model."""
        model = Path(encoder.path).read_bytes()
        if hashlib.sha256(model).hexdigest() != encoder.fingerprint:
            raise ClusterError(f"model file {encoder.path} changed since it was loaded; run again")
        return lambda paths, size: self.embed(paths, size, model, encoder.fingerprint)

    def embed(self, paths: list[str], size: int, model: bytes, fingerprint: str) -> Iterator[Prepared]:
        """Yield a :class:`Prepared` with a vector (or a skip reason) for each path, in order.

        Every worker first proves it can read a sample of ``paths`` (:meth:`probe`) and loads the
        model; nothing is yielded, so nothing can be committed, before both succeed.
        """
        if not paths:
            return
        from imgret.runtime import cluster_worker

        self.probe(paths)
        self._call(self.client.register_plugin, cluster_worker.ModelPlugin(model, fingerprint))
        chunks = (paths[i:i + self.chunk] for i in range(0, len(paths), self.chunk))
        window = max(2, self._threads() * (1 + AHEAD))

        def submit(chunk):
            return self.client.submit(cluster_worker.embed_task, fingerprint, chunk, size, pure=False)

        yield from in_order_bounded(submit, chunks, window=window, result=lambda fut: self._call(fut.result))

    def probe(self, paths: list[str]) -> None:
        """Check that every worker reads a sample of ``paths`` as this process sees them.

        Raises :class:`ClusterError` naming the first worker and path that fail.
        """
        from imgret.runtime import cluster_worker

        answers = self._call(self.client.run, cluster_worker.probe_task, _sample(paths))
        for worker, problem in sorted(answers.items()):
            if problem is not None:
                path, why = problem
                raise ClusterError(f"worker {worker} cannot read {path} ({why}): every worker must see the "
                                   "pictures under the same paths (shared storage); nothing was committed")

    def _call(self, fn, *args):
        """``fn(*args)``, with whatever Dask raises turned into one :class:`ClusterError` line."""
        try:
            return fn(*args)
        except ClusterError:
            raise
        except Exception as exc:
            raise self._lost(exc) from exc

    def _threads(self) -> int:
        try:
            return sum(self.client.nthreads().values())
        except Exception:
            return 1

    def _lost(self, exc: BaseException) -> ClusterError:
        name = type(exc).__name__
        if name == "KilledWorker":
            return ClusterError(f"dask workers kept dying on the same pictures ({_first_line(exc)}); "
                                "committed work is kept, run again to continue")
        if isinstance(exc, (OSError, TimeoutError)) or "Cancelled" in name or "CommClosed" in name:
            return ClusterError(f"lost the dask scheduler at {self.address} ({name}); committed work is kept, "
                                "run again to continue")
        return ClusterError(f"a dask task failed ({name}: {_first_line(exc)}); committed work is kept")


def _sample(paths: list[str]) -> list[tuple[str, int]]:
    """Up to :data:`PROBE_SAMPLE` files spread over ``paths`` that this process can read, with sizes."""
    step = max(1, len(paths) // PROBE_SAMPLE)
    picked = []
    for path in paths[::step]:
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            picked.append((path, os.stat(path).st_size))
        except OSError:
            continue  # unreadable here too: the indexer records it as skipped, it says nothing of a worker
        if len(picked) >= PROBE_SAMPLE:
            break
    return picked


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
