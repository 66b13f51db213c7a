"""What a cold ``imgret query`` loads: only the query command, only the Pillow plugins it needs, and
no onnxruntime session when every query picture is a library picture (its vector is stored)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from fakes import indexed_scenes, write_scenes

from imgret.errors import ModelError
from imgret.runtime.encoder import Encoder
from imgret.runtime.library import Library
from imgret.runtime.onnxmeta import NotOnnx, file_metadata_props, metadata_props
from imgret.runtime.session import new_session

COLD_QUERY = """
import sys
from imgret.cli import cli
try:
    cli.main(["query", "--library", {lib!r}, {photo!r}, "-N", "2"], standalone_mode=False)
finally:
    sys.stdout.flush()
print("LOADED", sorted(m for m in sys.modules if m.startswith(("imgret.", "PIL."))))
"""


@pytest.fixture
def library(tmp_path, fake_model):
    return indexed_scenes(tmp_path, fake_model, 4)


def test_a_cold_query_imports_only_what_it_uses(library):
    lib, photos = library
    script = COLD_QUERY.format(lib=str(lib), photo=str(photos / "scene000.png"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    loaded = out.split("LOADED", 1)[1]
    assert "scene00" in out  # it answered
    for unused in ("imgret.cli.train_cmds", "imgret.cli.dups_cmd", "imgret.cli.eval_cmd",
                   "imgret.cli.maintenance_cmds", "imgret.train",
                   "PIL.PdfImagePlugin", "PIL.EpsImagePlugin", "PIL.PsdImagePlugin"):
        assert f"'{unused}" not in loaded, unused


def test_every_listed_command_loads_under_its_name():
    from click import Context

    from imgret.cli import COMMANDS, cli

    ctx = Context(cli)
    assert cli.list_commands(ctx) == list(COMMANDS)
    for name in COMMANDS:
        assert cli.get_command(ctx, name).name == name
    assert cli.get_command(ctx, "nope") is None


def test_a_library_picture_is_answered_without_an_onnxruntime_session(library):
    lib, photos = library
    with Library.open(lib) as opened:
        results = opened.query([photos / "scene001.png"], 2)
        assert opened.encoder._session is None
        assert results[0].hits and results[0].error is None
        outside = opened.query([write_scenes(lib.parent / "q", 1, start=40)[0]], 2)  # must be embedded
        assert opened.encoder._session is not None
        assert outside[0].hits


def test_a_checked_model_opened_late_embeds_exactly_as_one_opened_at_once(fake_model):
    eager = Encoder(fake_model)
    late = Encoder(fake_model, checked_fingerprint=eager.fingerprint)
    assert late._session is None
    assert late.info == eager.info
    pixels = np.random.default_rng(3).integers(0, 256, (2, late.size, late.size, 3), dtype=np.uint8)
    np.testing.assert_array_equal(late.embed_arrays(pixels), eager.embed_arrays(pixels))


def test_another_fingerprint_is_checked_at_once(fake_model):
    enc = Encoder(fake_model, checked_fingerprint="0" * 64)
    assert enc._session is not None


def test_a_model_changed_after_it_was_opened_is_refused_before_onnxruntime_sees_it(tmp_path, fake_model):
    copy = tmp_path / "m.onnx"
    copy.write_bytes(fake_model.read_bytes())
    enc = Encoder(copy, checked_fingerprint=Encoder(copy).fingerprint)
    copy.write_bytes(fake_model.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="changed after it was opened"):
        enc.embed_arrays(np.zeros((1, enc.size, enc.size, 3), dtype=np.uint8))


def test_metadata_read_from_the_bytes_is_what_onnxruntime_reads(fake_model):
    from imgret import models

    for path in [fake_model, *(m.path for m in models.bundled())]:
        expected = new_session(path).get_modelmeta().custom_metadata_map
        assert metadata_props(path.read_bytes()) == expected
        assert file_metadata_props(path) == expected


def test_bytes_that_are_not_a_model_are_refused(tmp_path, fake_model):
    data = fake_model.read_bytes()
    cut, odd = tmp_path / "cut.onnx", tmp_path / "odd.onnx"
    cut.write_bytes(data[: len(data) // 2])  # cut inside the graph
    odd.write_bytes(b"\x0f\xff\xff")  # wire type 7
    for bad in (cut, odd):
        with pytest.raises(NotOnnx):
            metadata_props(bad.read_bytes())
        with pytest.raises(NotOnnx):
            file_metadata_props(bad)


FROZEN = """
import atexit, gc, sys
sys.argv = ["imgret", "query", "--library", {lib!r}, {photo!r}, "-N", "2"]
atexit.register(lambda: print("FROZEN", gc.get_freeze_count() > 1000))
from imgret.cli import main
main()
"""


def test_the_command_process_keeps_its_imports_out_of_the_collectors_sight_and_a_host_program_does_not(library):
    """`imgret` as its own process freezes what the imports made (no collection walks it again, the
    last one at exit included); the CLI run inside another program (here: this test process) does not."""
    import gc

    lib, photos = library
    script = FROZEN.format(lib=str(lib), photo=str(photos / "scene000.png"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "scene00" in out.stdout and "FROZEN True" in out.stdout, out
    from imgret.cli import cli
    from imgret.cli.errors import run_cli

    before = gc.get_freeze_count()
    assert run_cli(cli, ["query", "--library", str(lib), str(photos / "scene000.png"), "-N", "2"]) == 0
    assert gc.get_freeze_count() == before
