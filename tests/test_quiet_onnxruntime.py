"""onnxruntime stays quiet: no telemetry files in the user's home, none of its own log lines on stderr.

These run the real command in a child process: onnxruntime writes its device id when it is first
imported and logs to the process's own stderr, which an in-process runner cannot see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import make_thumbnail_model, write_scenes


def _imgret(home: Path, *args) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XDG_", "ORT_", "IMGRET_")) and key != "HOME"}
    env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "imgret", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def empty_home(tmp_path):
    """An empty home folder that cannot be written (for a user who is not root)."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    yield home
    home.chmod(0o755)


def test_index_and_query_write_nothing_in_home_and_say_nothing_of_onnxruntime(empty_home, tmp_path, fake_model):
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    write_scenes(photos, 4)
    index = _imgret(empty_home, "index", photos, "--library", lib, "--model", fake_model, "--workers", "1")
    assert index.returncode == 0, index.stderr
    query = _imgret(empty_home, "query", photos / "scene000.png", "--library", lib, "-N", "2")
    assert query.returncode == 0, query.stderr
    assert query.stderr == ""
    for run in (index, query):
        assert "onnxruntime" not in run.stderr.lower() and "telemetry" not in run.stderr.lower()
    assert list(empty_home.iterdir()) == []  # no ~/.cache/Microsoft/DeveloperTools/.onnxruntime


def test_a_model_onnxruntime_cannot_load_is_one_imgret_line(empty_home, tmp_path):
    """A huge initializer makes onnxruntime fail with "Integer overflow"; its own coloured
    ``[E:onnxruntime:...]`` line must not come before imgret's message."""
    import onnx
    from onnx import TensorProto, helper

    path = make_thumbnail_model(tmp_path / "huge.onnx")
    model = onnx.load(str(path))
    huge = TensorProto(name="huge", data_type=TensorProto.FLOAT, dims=[2**40, 2**40], raw_data=b"\0" * 16)
    model.graph.initializer.append(huge)
    model.graph.node.append(helper.make_node("Identity", ["huge"], ["huge_out"]))
    model.graph.output.append(helper.make_tensor_value_info("huge_out", TensorProto.FLOAT, [2**40, 2**40]))
    onnx.save(model, str(path))
    photos = tmp_path / "photos"
    write_scenes(photos, 1)
    run = _imgret(empty_home, "index", photos, "--library", tmp_path / "lib", "--model", path)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgret: error: ") and "cannot load this model" in lines[0]
    assert "[E:onnxruntime" not in run.stderr and "\x1b[" not in run.stderr
    assert list(empty_home.iterdir()) == []
