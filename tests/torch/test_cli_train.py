"""The ``train`` and ``export`` commands: thin wrappers with clear messages and exit codes."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from imgret.cli.train_cmds import export_command, train_command  # noqa: E402


@pytest.mark.parametrize("command", [train_command, export_command])
def test_missing_torch_gives_one_line_install_hint(command, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    args = [str(tmp_path)] + (["-o", str(tmp_path / "m.onnx")] if command is export_command else [])
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 1
    assert "pip install 'imgret[train]'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_train_then_export_from_the_command_line(pictures, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(train_command, [str(pictures), "--out", str(run), "--arch", "seed", "--image-size", "32",
                                           "--epochs", "1", "--batch-size", "8", "--augment"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs on 24 pictures" in result.stdout
    result = runner.invoke(export_command, [str(run), "-o", str(tmp_path / "m.onnx"), "--int8"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and "neighbour overlap" in result.stderr
    assert (tmp_path / "m.onnx").is_file() and (tmp_path / "m.int8.onnx").is_file()


def test_ctrl_c_exits_130(pictures, tmp_path, monkeypatch):
    import imgret.train
    from imgret.train import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted("interrupted after 0 of 1 epochs", None)

    monkeypatch.setattr(imgret.train, "train", interrupted)
    result = CliRunner().invoke(train_command, [str(pictures), "--out", str(tmp_path / "r")])
    assert result.exit_code == 130 and "interrupted" in result.output


def test_library_errors_become_exit_1(tmp_path):
    result = CliRunner().invoke(export_command, [str(tmp_path), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "neither best.pt nor last.pt" in result.output
