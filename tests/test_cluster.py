"""`imgret index --cluster`: Dask workers decode and embed, the index process stays the only writer.

The tests start real local clusters of 2 worker processes (1 thread each) and compare what they build
with a plain single-machine build of the same pictures, vector for vector.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from fakes import write_scenes
from PIL import Image

from imgret.errors import ClusterError
from imgret.runtime import cluster as cluster_module
from imgret.runtime.cluster import ClusterSource, open_cluster
from imgret.runtime.library import Library

# Looked up, not imported: importing distributed costs every test process (and xdist worker) two seconds
# of collection; the tests that need it import it through imgret when they run.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                                reason="the cluster extra (dask[distributed]) is not installed")


def _pictures(folder):
    write_scenes(folder, 70)
    write_scenes(folder / "sub", 5, suffix=".jpg")
    Image.open(folder / "scene003.png").save(folder / "sub" / "copy-of-3.png")  # reused by content
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a real jpeg")
    return folder


def _snapshot(library):
    """Every row (path, status, hash, skip reason) and the vectors of the pictures, by path."""
    with Library.open(library) as lib:
        rows = sorted((r.path, r.status, r.sha256) for r in lib.catalogue.rows())
        ok = [path for path, status, _ in rows if status == "ok"]
        vectors, found = lib.vectors_for(ok, workers=0)
    assert found.all()
    return rows, dict(zip(ok, vectors))


def _assert_same_library(a, b):
    rows_a, vecs_a = _snapshot(a)
    rows_b, vecs_b = _snapshot(b)
    assert rows_a == rows_b
    for path, vec in vecs_a.items():
        np.testing.assert_allclose(vecs_b[path], vec, atol=1e-6)


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of 2 worker processes for the tests that do not break it."""
    with open_cluster("local:2") as remote:
        yield remote


@pytest.fixture
def plain(tmp_path):
    pics = _pictures(tmp_path / "pics")
    with Library.open_writable(tmp_path / "plain") as lib:
        lib.index(pics, workers=0)
    return pics, tmp_path / "plain"


def test_a_cluster_build_equals_a_plain_build(tmp_path, plain, cluster):
    pics, reference = plain
    with Library.open_writable(tmp_path / "cl") as lib:
        report = lib.index(pics, source=cluster.for_encoder(lib.encoder))
    assert report.added == 76 and report.skipped_count == 1 and report.reused == 1
    _assert_same_library(reference, tmp_path / "cl")


def test_workers_load_the_model_once_and_keep_it(tmp_path, plain, cluster):
    from imgret.runtime import cluster_worker

    pics, _ = plain
    with Library.open_writable(tmp_path / "cl") as lib:
        source = cluster.for_encoder(lib.encoder)
        lib.index(pics, source=source)
        first = cluster.client.run(cluster_worker.loaded_models)
        write_scenes(pics, 40, start=500)
        lib.index(pics, source=source)
        second = cluster.client.run(cluster_worker.loaded_models)
    assert first == second  # the same session objects served the second run
    assert all(list(models) == [lib.encoder.fingerprint] for models in first.values())


def test_the_model_travels_by_content_not_by_path(tmp_path, plain, cluster, fake_model):
    """Workers never open the writer's model file: it can vanish once the library has loaded it."""
    pics, _ = plain
    model = tmp_path / "private.onnx"
    model.write_bytes(fake_model.read_bytes())
    with Library.open_writable(tmp_path / "cl", model=model) as lib:
        source = cluster.for_encoder(lib.encoder)
        model.unlink()
        report = lib.index(pics, source=source)
    assert report.added == 76


class HalfBlindClient:
    """A fake client of two workers, the second of which does not see the pictures' folder."""

    def __init__(self, hidden: str) -> None:
        self.hidden = hidden
        self.submitted = 0

    def run(self, fn, sample):
        from imgret.runtime import cluster_worker

        assert fn is cluster_worker.probe_task
        blind = [(p.replace(self.hidden, self.hidden + "-not-mounted"), size) for p, size in sample]
        return {"tcp://10.0.0.1:4001": fn(sample), "tcp://10.0.0.2:4001": fn(blind)}

    def register_plugin(self, plugin):  # pragma: no cover - must not be reached
        raise AssertionError("the model was shipped before the probe passed")

    def submit(self, *args, **kwargs):  # pragma: no cover - must not be reached
        self.submitted += 1
        raise AssertionError("work was sent before the probe passed")


def test_a_worker_that_cannot_read_the_pictures_stops_the_run_before_any_commit(tmp_path, fake_model):
    pics = _pictures(tmp_path / "pics")
    fake = HalfBlindClient(str(pics))
    with Library.open_writable(tmp_path / "cl", model=fake_model) as lib:
        source = ClusterSource(fake, "tcp://scheduler:8786").for_encoder(lib.encoder)
        with pytest.raises(ClusterError) as caught:
            lib.index(pics, source=source)
    message = str(caught.value)
    assert "tcp://10.0.0.2:4001" in message and str(pics) in message and "\n" not in message
    assert fake.submitted == 0
    with Library.open(tmp_path / "cl") as lib:
        assert len(lib) == 0 and list(lib.catalogue.rows()) == []


def _killing_source(inner, client, *, after: int):
    """Wrap a cluster source: SIGKILL one worker process once ``after`` results have come back."""
    pids = list(client.run(os.getpid).values())

    def source(paths, size):
        for done, prep in enumerate(inner(paths, size)):
            if done == after:
                os.kill(pids[0], signal.SIGKILL)
            yield prep

    return source


def test_a_worker_killed_mid_run_loses_no_picture(tmp_path, plain, monkeypatch, cluster):
    """On the module's cluster (its last user, as the killed worker's nanny starts a new one, and a
    cluster start is about 2 s of CPU): both workers are up when the run starts, one dies mid-run."""
    pics, reference = plain
    monkeypatch.setenv("IMGRET_COMMIT_EVERY", "8")
    monkeypatch.setattr(cluster, "chunk", 4)  # many small tasks, so the killed worker surely holds some
    assert len(cluster.client.run(os.getpid)) == 2
    with Library.open_writable(tmp_path / "cl") as lib:
        lib.index(pics, source=_killing_source(cluster.for_encoder(lib.encoder), cluster.client, after=10))
    _assert_same_library(reference, tmp_path / "cl")


def test_a_lost_scheduler_ends_the_run_in_one_line_and_keeps_committed_work(tmp_path, plain, monkeypatch):
    pics, reference = plain
    monkeypatch.setenv("IMGRET_COMMIT_EVERY", "8")
    # Closing a cluster whose scheduler is gone waits out CLOSE_SECONDS; the test needs no grace.
    monkeypatch.setattr(cluster_module, "CLOSE_SECONDS", 1)
    with open_cluster("local:2") as remote, Library.open_writable(tmp_path / "cl") as lib:
        remote.chunk = 4
        inner = remote.for_encoder(lib.encoder)
        local, pids = remote.client.cluster, list(remote.client.run(os.getpid).values())

        def source(paths, size):
            for done, prep in enumerate(inner(paths, size)):
                if done == 20:
                    remote.client.sync(remote.client.cluster.scheduler.close)
                yield prep

        with pytest.raises(ClusterError) as caught:
            lib.index(pics, source=source)
    assert "lost the dask scheduler" in str(caught.value) and "\n" not in str(caught.value)
    # open_cluster gave up on the headless cluster itself, so no exit hook waits on it again.
    assert local.shutdown_on_close is False
    _forget_headless(local, pids)
    with Library.open(tmp_path / "cl") as lib:
        kept = len(lib)
    assert 16 <= kept < 76  # the batches committed before the loss are kept
    with Library.open_writable(tmp_path / "cl") as lib:  # and the next run carries on
        assert lib.index(pics, workers=0).added == 76 - kept
    _assert_same_library(reference, tmp_path / "cl")


def _forget_headless(local, pids) -> None:
    """End the workers of a cluster whose scheduler is gone, and keep distributed's exit hook from
    closing it again: that close waits out its 10 s timeout, which under xdist idles a worker 10 s."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    local.shutdown_on_close = False


def test_the_cli_indexes_through_a_local_cluster(tmp_path, imgret, plain, fake_model):
    pics, _ = plain
    # One worker is enough to show the CLI routes through a cluster; the two-worker builds are above.
    out = imgret("index", pics, "--cluster", "local:1", "--model", fake_model, "-l", tmp_path / "cl")
    assert out.code == 0, out.stderr
    assert "76 added" in out.stderr


def test_a_bad_local_cluster_size_is_a_clear_error(imgret, photos):
    out = imgret("index", photos, "--cluster", "local:zero")
    assert out.code == 1 and "local:N" in out.stderr


def test_without_the_extra_cluster_says_how_to_install_it(imgret, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    out = imgret("index", photos, "--cluster", "local:2")
    assert out.code == 1
    assert "pip install 'dask[distributed]" in out.stderr and "'.[cluster]'" in out.stderr


def test_base_imgret_never_imports_dask(tmp_path, fake_model):
    pics = tmp_path / "pics"
    write_scenes(pics, 3)
    code = f"""
import sys
from imgret.cli import cli
from imgret.cli.errors import run_cli
import imgret.runtime.cluster
run_cli(cli, ["index", {str(pics)!r}, "--model", {str(fake_model)!r}, "-l", {str(tmp_path / 'lib')!r}])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
assert not bad, bad
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
