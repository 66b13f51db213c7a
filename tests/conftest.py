"""Shared fixtures: an isolated per-test library location, a fake encoder, and a CLI runner."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

# With PYTHONDONTWRITEBYTECODE set (as on the shared test machine) every xdist worker of every run would
# recompile imgret and re-rewrite every test module: about 4 s of start-up per worker. The caches go to
# the git-ignored __pycache__ folders; child processes keep whatever their environment says.
sys.dont_write_bytecode = False

from fakes import make_thumbnail_model, write_scenes  # noqa: E402

from imgret.runtime.session import quiet_onnxruntime  # noqa: E402

# Tests run the CLI in this process, and `imgret query` promises that nothing is embedded after its
# search (Library.open(one_shot=True)): a query of library pictures would then load usearch without
# onnxruntime, and a later test could not load onnxruntime at all. A long-lived process loads it first.
quiet_onnxruntime()

RAM_FOLDER = Path("/dev/shm")


def pytest_configure(config):
    """Put test folders (and the temp files of child processes) in RAM when the machine has a tmpfs.

    Every library commit and atomic write fsyncs, which on a real disk costs ~10 ms each and about a
    fifth of the suite's time. What the tests check is unchanged: the crash tests kill processes, which
    fsync does not guard against, and the disk-full tests fake the full disk. An explicit TMPDIR or
    --basetemp is left alone."""
    if os.environ.get("TMPDIR") or config.option.basetemp or not RAM_FOLDER.is_dir():
        return
    if not os.access(RAM_FOLDER, os.W_OK) or shutil.disk_usage(RAM_FOLDER).free < 2 * 2**30:
        return
    os.environ["TMPDIR"] = str(RAM_FOLDER)  # inherited by xdist workers and every child process
    tempfile.tempdir = None  # forget the folder tempfile may already have chosen


@pytest.fixture(autouse=True)
def isolated_library(tmp_path, monkeypatch):
    """Never touch the user's real library: IMGRET_LIBRARY points into the test's folder."""
    lib = tmp_path / "library"
    monkeypatch.setenv("IMGRET_LIBRARY", str(lib))
    return lib


@pytest.fixture(scope="session")
def fake_model(tmp_path_factory) -> Path:
    return make_thumbnail_model(tmp_path_factory.mktemp("models") / "thumb.onnx")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    write_scenes(folder, 12)
    return folder


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may not be installed
def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadscope`` (pyproject's addopts) split the suite as :mod:`xdist_schedule` says."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist_schedule import LongFirstScheduling

    return LongFirstScheduling(config, log)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes


@pytest.fixture
def imgret():
    """Run the real CLI entry (with its error mapping) in-process; returns an :class:`Outcome`."""
    from imgret.cli import cli
    from imgret.cli.errors import run_cli

    def invoke(*args: str) -> Outcome:
        runner = CliRunner()
        with runner.isolation() as streams:
            code = run_cli(cli, [str(a) for a in args])
            sys.stdout.flush()
            sys.stderr.flush()
            out, err = streams[0].getvalue(), streams[1].getvalue()
        return Outcome(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), out)

    return invoke
