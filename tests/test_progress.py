"""The progress line's time left follows the recent rate, not the first files (a slow start, such as
large pictures first, once made a 21 s job say 16 minutes)."""

from __future__ import annotations

import io

import pytest

from imgret.runtime import progress as progress_module
from imgret.runtime.progress import Progress


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", c)
    return c


def test_eta_after_a_slow_start_comes_from_the_recent_rate(clock):
    out = io.StringIO()
    bar = Progress("indexing", enabled=True, stream=out, log_every=0)
    total, done = 10_000, 0
    for _ in range(10):  # a slow start: 1 file/s for 10 s
        clock.now += 1.0
        done += 1
        bar(done, total)
    for _ in range(300):  # then 100 files/s for 30 s
        clock.now += 0.1
        done += 10
        bar(done, total)
    assert bar.rate() == pytest.approx(100.0, rel=0.01)
    left = (total - done) / 100.0  # 70 s at the recent rate; the whole-run average (75/s) would say 93 s
    last = out.getvalue().strip().splitlines()[-1]
    assert f"ETA {progress_module.clock(left)}" in last
    assert "100.0 files/s" in last


def test_index_draws_its_progress_through_the_shared_type(imgret, photos, fake_model):
    r = imgret("index", photos, "--model", fake_model, "--progress", "--workers", "0")
    assert r.code == 0, r.stderr
    assert "indexing photos [" in r.stderr and "files/s" in r.stderr and "ETA" in r.stderr
