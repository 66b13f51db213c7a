"""The ``train`` and ``export`` commands: thin wrappers with clear messages and exit codes."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from imgret.cli.train_cmds import export_command, train_command  # noqa: E402


@pytest.mark.parametrize("command", ["train", "export"])
def test_missing_torch_gives_one_line_install_hint(command, tmp_path, monkeypatch, imgret):
    monkeypatch.setitem(sys.modules, "torch", None)
    args = [str(tmp_path)] + (["-o", str(tmp_path / "m.onnx")] if command == "export" else [])
    result = imgret(command, *args)
    assert result.code == 1
    assert "pip install torch==2.13.0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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


def test_library_errors_become_exit_1(tmp_path, imgret):
    result = imgret("export", str(tmp_path), "-o", str(tmp_path / "m.onnx"))
    assert result.code == 1 and "neither best.pt nor last.pt" in result.stderr


def test_train_options_come_from_the_config_with_its_defaults_and_help(tmp_path):
    from imgret.train.config import TrainConfig, cli_options

    params = {p.name: p for p in train_command.params}
    parsed = train_command.make_context("train", [str(tmp_path)]).params  # what an empty command line gives
    defaults = TrainConfig(data="d", out="o")
    for name, _kind, default, settings in cli_options():
        assert parsed[name] == default == getattr(defaults, name), name
        assert params[name].help == settings["help"], name
    assert list(params["arch"].type.choices) == ["auto", "conv", "seed"] and params["resume"].is_flag
    assert {"data", "out", "resume"} | {name for name, *_ in cli_options()} == set(params)
