"""Recipes and defaults that fit the data: ``imgret train FOLDER`` with no flags trains the best
general recipe at a size that suits the pictures; ``--recipe`` names the others; export follows the run."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from conftest import small_config, write_pictures  # noqa: E402

from imgret.cli.train_cmds import export_command, train_command  # noqa: E402
from imgret.train.config import TrainConfig  # noqa: E402


def _train(args):
    result = CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_the_default_is_the_best_fashion_mnist_recipe():
    config = TrainConfig(data="d", out="o", image_size=28).resolved()
    assert (config.recipe, config.arch, config.width, config.latent_dim) == ("default", "seed", 64, 128)
    assert (config.invariance_loss, config.temperature, config.projector, config.augment) == ("contrastive", 0.7,
                                                                                                True, True)
    assert (config.decoder, config.recon_views, config.graph_dim, config.map_dim) == ("half", 1, 16, 256)
    assert (config.flip_tta, config.graph_weight, config.map_whiten) == (True, 1.5, 0.35)


def test_the_default_recipe_keeps_photo_sized_models_small():
    from imgret.train.models import build_autoencoder

    config = TrainConfig(data="d", out="o").resolved()  # 128 px: the seed encoder's dense layer would be huge
    assert (config.image_size, config.arch, config.width, config.map_dim) == (128, "conv", 32, 0)
    encoder_bytes = sum(p.numel() * 4 for p in build_autoencoder(config).encoder.parameters())
    assert encoder_bytes < 2 * 2**20


def test_default_training_on_a_tiny_folder_then_export_needs_no_flags(pictures, tmp_path):
    import onnxruntime as ort

    from imgret.runtime.modelinfo import ModelInfo

    run = tmp_path / "run"
    result = _train([pictures, "--out", run, "--epochs", "1"])
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "default" and config["arch"] == "seed" and config["image_size"] == 32
    assert config["graph_dim"] == 16 and config["map_dim"] == 256 and config["flip_tta"] is True
    assert result.stderr.splitlines()[0].startswith("recipe default: arch seed")
    exported = CliRunner().invoke(export_command, [str(run), "-o", str(tmp_path / "m.onnx")], catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert info.flip_tta and info.embedding_dim == 128 + 256 + 16
    assert info.training["recipe"]["recipe"] == "default" and info.training["recipe"]["graph_weight"] == 1.5
    assert "--flip-tta" not in exported.stderr  # no note asking for a flag the run already implies
    assert "warning" not in result.stderr and "warning" not in exported.stderr  # its pictures are told apart


def test_a_recipe_by_name_with_explicit_flags_overriding_it(pictures, tmp_path):
    run = tmp_path / "run"
    _train([pictures, "--out", run, "--recipe", "plain", "--epochs", "1", "--augment", "--batch-size", "8"])
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "plain" and config["augment"] is True and config["batch_size"] == 8
    assert (config["arch"], config["invariance"], config["graph_dim"], config["map_dim"]) == ("conv", 0.0, 0, 0)
    seed = TrainConfig.from_recipe("seed", data="d", out="o", image_size=28).resolved()
    assert (seed.arch, seed.latent_dim, seed.width, seed.augment, seed.flip_tta) == ("seed", 16, 32, False, False)


def test_help_says_what_the_default_trains():
    result = CliRunner().invoke(train_command, ["--help"])
    assert "--recipe [default|plain|seed]" in result.output
    assert "With no options it trains the default recipe" in result.output
    assert "--no-augment" in result.output  # a recipe's switch can be turned off


@pytest.mark.parametrize(("side", "arch", "expected"), [(20, "auto", 20), (28, "auto", 28), (28, "conv", 32),
                                                        (40, "auto", 48), (300, "auto", 128)])
def test_the_default_size_follows_small_pictures(tmp_path, side, arch, expected):
    from imgret.train.data import sized_to_pictures

    write_pictures(tmp_path / "data", 5, size=side)
    config = sized_to_pictures(TrainConfig(data=str(tmp_path / "data"), out="o", arch=arch))
    assert config.image_size == expected and config.typical_size == side
    given = sized_to_pictures(TrainConfig(data=str(tmp_path / "data"), out="o", image_size=64))
    assert given.image_size == 64 and given.typical_size == 0  # --image-size overrides


def test_the_first_line_and_config_say_why_the_size_is_small(tmp_path):
    write_pictures(tmp_path / "data", 12, size=24)
    run = tmp_path / "run"
    result = _train([tmp_path / "data", "--out", run, "--recipe", "plain", "--epochs", "1", "--batch-size", "8"])
    first = result.stderr.splitlines()[0]
    assert "32px" in first and "median size is 24 px" in first and "--image-size" in first
    config = json.loads((run / "config.json").read_text())
    assert (config["image_size"], config["typical_size"], config["arch"]) == (32, 24, "conv")


def test_recon_png_labels_its_rows_and_epoch(tmp_path):
    import numpy as np
    from PIL import Image

    from imgret.train.plots import LABEL_WIDTH, TITLE_HEIGHT, recon_grid

    pics = np.full((3, 8, 8, 3), 255, dtype=np.uint8)
    for epoch in (1, 7):
        recon_grid(pics, pics, str(tmp_path / f"r{epoch}.png"), epoch=epoch)
    one, seven = (np.asarray(Image.open(tmp_path / f"r{e}.png").convert("L")) for e in (1, 7))
    cell = (one.shape[0] - TITLE_HEIGHT) // 2
    for row in range(2):  # a dark label left of each row of (white) pictures
        assert one[TITLE_HEIGHT + row * cell: TITLE_HEIGHT + (row + 1) * cell, :LABEL_WIDTH].min() < 128
    assert one[:TITLE_HEIGHT].min() < 128 and not np.array_equal(one[:TITLE_HEIGHT], seven[:TITLE_HEIGHT])
    assert np.array_equal(one[TITLE_HEIGHT:], seven[TITLE_HEIGHT:])


def test_spread_measure_tells_collapsed_embeddings_from_spread_ones():
    import numpy as np

    from imgret.train.spread import collapse_warning, mean_cosine_distance

    rng = np.random.default_rng(0)
    base = rng.normal(size=64)
    collapsed = base + 0.01 * rng.normal(size=(20, 64))
    assert mean_cosine_distance(collapsed) < 0.001
    assert abs(mean_cosine_distance(rng.normal(size=(200, 64))) - 1.0) < 0.05
    warning = collapse_warning(collapsed)
    assert "nearly the same embedding" in warning and "train longer" in warning and "check the data" in warning
    assert collapse_warning(rng.normal(size=(20, 64))) is None


def test_a_model_that_learnt_nothing_is_reported_by_train_and_export(tmp_path):
    import io

    from imgret.export import export_encoder
    from imgret.train import train

    # Every picture the same colour field but for a faint dot: nothing to tell them apart by.
    data = tmp_path / "data"
    write_pictures(data, 16, size=32)
    import numpy as np
    from PIL import Image

    for i, path in enumerate(sorted(data.rglob("*.png"))):
        img = np.full((32, 32, 3), 120, dtype=np.uint8)
        img[i % 32, i % 32] = 121
        Image.fromarray(img).save(path)
    log = io.StringIO()
    train(small_config(data, tmp_path / "run", epochs=1), stream=log)
    assert "warning: the model gives nearly the same embedding" in log.getvalue()
    result = export_encoder(tmp_path / "run", tmp_path / "m.onnx")
    assert len(result.warnings) == 1 and "train longer" in result.warnings[0]


def test_a_config_saved_before_recipes_keeps_the_settings_of_its_time():
    old = {"data": "d", "out": "o", "arch": "seed", "latent_dim": 16, "image_size": 28, "augment": True}
    config = TrainConfig.from_json(json.dumps(old)).resolved()
    assert (config.recipe, config.width, config.map_dim, config.graph_dim, config.projector) == ("custom", 32, 0, 0,
                                                                                                 False)
    assert (config.batch_size, config.decoder, config.recon_views, config.flip_tta) == (64, "full", 2, True)
