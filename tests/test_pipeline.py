"""The decode pipeline: bounded work in flight, order kept, no needless copies, no orphans."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from fakes import write_scenes
from PIL import Image

from imgret.runtime import batching, imageio
from imgret.runtime.batching import in_order_bounded, meanwhile, prepared_stream


class CountingPool:
    """A fake executor: records how many submitted items are unfinished at each submit."""

    def __init__(self) -> None:
        self.unfinished = 0
        self.most = 0
        self.submitted = 0

    def submit(self, item):
        self.unfinished += 1
        self.submitted += 1
        self.most = max(self.most, self.unfinished)
        return item

    def result(self, item):
        self.unfinished -= 1
        return [item * 10, item * 10 + 1]


def test_in_order_bounded_never_has_more_than_the_window_in_flight():
    pool = CountingPool()
    consumed = []
    for value in in_order_bounded(pool.submit, range(100), window=6, result=pool.result):
        consumed.append(value)
        assert pool.submitted - len(consumed) // 2 <= 6  # nothing is submitted far ahead of the reader
    assert pool.most == 6
    assert consumed == [v for i in range(100) for v in (i * 10, i * 10 + 1)]


def test_in_order_bounded_is_lazy():
    """Submitting every chunk at once (what piled decoded pictures up in memory) is not possible."""
    pool = CountingPool()
    stream = in_order_bounded(pool.submit, range(10_000), window=4, result=pool.result)
    next(stream)
    assert pool.submitted == 4


def test_meanwhile_runs_its_work_beside_the_body_and_waits_for_it():
    """The work runs while the body runs (each waits for the other here: run one after the other,
    both would time out), and it has finished when the block ends."""
    work_started, body_ran, done = threading.Event(), threading.Event(), []

    def work():
        work_started.set()
        done.append(body_ran.wait(5))

    with meanwhile(work):
        assert work_started.wait(5)
        body_ran.set()
    assert done == [True]


def test_meanwhile_drops_the_errors_of_its_work_and_does_nothing_without_work():
    def work():
        raise ImportError("no such library")

    ran = []
    with meanwhile(work):
        ran.append(1)
    with meanwhile(None):
        ran.append(2)
    assert ran == [1, 2]


def test_worker_processes_give_the_same_pictures_in_order(tmp_path):
    paths = [str(p) for p in write_scenes(tmp_path / "pics", 4 * batching.CHUNK + 5)]
    (tmp_path / "pics" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    paths.insert(7, str(tmp_path / "pics" / "broken.png"))
    local = list(prepared_stream(paths, 32, workers=0))
    pooled = list(prepared_stream(paths, 32, workers=2))
    assert [p.path for p in pooled] == paths
    assert [p.sha256 for p in pooled] == [p.sha256 for p in local]
    assert [p.reason for p in pooled] == [p.reason for p in local] and pooled[7].reason is not None
    for a, b in zip(local, pooled):
        if a.pixels is not None:
            assert np.array_equal(a.pixels, b.pixels)


def test_default_workers_is_the_cores_this_process_may_use():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert batching.resolve_workers(None) == expected
    assert batching.resolve_workers(0) == 0


def test_a_picture_without_orientation_is_not_copied(tmp_path, monkeypatch):
    """exif_transpose used to copy every picture (+30 ms on a 4K PNG) even with nothing to rotate."""
    path = tmp_path / "plain.png"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(path)
    copies = []
    real_copy = Image.Image.copy
    monkeypatch.setattr(Image.Image, "copy", lambda self: copies.append(self.size) or real_copy(self))
    img = imageio.decode(path.read_bytes())
    assert img.size == (300, 200)
    assert copies == []


def test_an_oriented_picture_is_still_turned_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = tmp_path / "turned.jpg"
    Image.new("RGB", (300, 200), (10, 200, 30)).save(path, exif=exif.tobytes())
    assert imageio.decode(path.read_bytes()).size == (200, 300)


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``marker`` (children inherit it)."""
    found = []
    needle = f"IMGRET_TEST_RUN={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the run's processes")
def test_a_killed_index_run_leaves_no_process_behind(tmp_path, fake_model):
    """kill -9 of `imgret index` mid-run: its decode workers and multiprocessing's resource tracker
    must all be gone within a few seconds (they used to idle for ever)."""
    pics = tmp_path / "pics"
    pics.mkdir()
    big = pics / "big000.png"  # slow enough to decode that the run is surely still going when killed
    ramp = np.linspace(0, 255, 1500 * 1500 * 3).reshape(1500, 1500, 3).astype(np.uint8)
    Image.fromarray(ramp).save(big)
    for i in range(1, 300):
        shutil.copyfile(big, pics / f"big{i:03d}.png")
    marker = uuid.uuid4().hex
    env = dict(os.environ, IMGRET_TEST_RUN=marker, IMGRET_LIBRARY=str(tmp_path / "lib"))
    run = subprocess.Popen([sys.executable, "-m", "imgret", "index", str(pics), "--workers", "2",
                            "--model", str(fake_model), "--no-progress"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_processes_with(marker)) < 3 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # wait for the parent and its two workers
        assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read().decode()
        assert len(_processes_with(marker)) >= 3
        run.send_signal(signal.SIGKILL)
        assert run.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _processes_with(marker) == []
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
