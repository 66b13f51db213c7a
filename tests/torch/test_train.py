"""Training: both architectures run, checkpoints are safe and resumable, data rules are honoured."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import small_config, write_pictures  # noqa: E402

from imgret.errors import TrainingError  # noqa: E402


@pytest.mark.parametrize("arch", ["conv", "seed"])
def test_training_writes_checkpoints_plots_and_history(trained_runs, arch):
    run = trained_runs[arch]
    for name in ("best.pt", "last.pt", "config.json", "loss.csv", "loss.json", "loss.png", "recon.png"):
        assert (run / name).is_file(), name
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and isinstance(state["model"], dict)
    rows = list(csv.DictReader(open(run / "loss.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_loss"])) for r in rows)
    assert json.loads((run / "config.json").read_text())["arch"] == arch


def test_conv_encoder_is_small():
    from imgret.train.config import TrainConfig
    from imgret.train.models import build_autoencoder

    model = build_autoencoder(TrainConfig(data="d", out="o").resolved())
    size = sum(p.numel() * 4 for p in model.encoder.parameters())
    assert size < 2 * 2**20


def test_resume_after_interrupt_matches_uninterrupted_run(pictures, tmp_path):
    from imgret.train import TrainingInterrupted, train

    extras = {"augment": True, "denoise": True, "invariance": 0.5}
    train(small_config(pictures, tmp_path / "whole", **extras))

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as info:
        train(small_config(pictures, tmp_path / "split", **extras), on_epoch_end=stop)
    assert torch.load(info.value.last_path, weights_only=True)["epoch"] == 1
    # Settings come from the checkpoint on resume; a different epoch count here is ignored.
    train(small_config(pictures, tmp_path / "split", epochs=99), resume=True)

    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


class CtrlCDuring:
    """A log stream that raises KeyboardInterrupt (as a Ctrl-C would) when a line with ``text`` is written."""

    def __init__(self, text: str) -> None:
        self.text, self.lines = text, []

    def write(self, line: str) -> None:
        self.lines.append(line)
        if self.text in line:
            raise KeyboardInterrupt

    def flush(self) -> None:
        pass


def test_interrupt_in_first_epoch_still_leaves_a_usable_checkpoint(pictures, tmp_path):
    from imgret.train import TrainingInterrupted, train

    with pytest.raises(TrainingInterrupted):
        train(small_config(pictures, tmp_path / "run"), stream=CtrlCDuring("epoch 1/2 [#"))  # after its first batch
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and state["interrupted"] == 1
    # --resume continues from it and runs every epoch.
    assert train(small_config(pictures, tmp_path / "run"), resume=True).epochs == 2


def test_corrupt_pictures_are_skipped_and_counted(pictures, tmp_path):
    from imgret.train import train

    (pictures / "random.jpg").write_bytes(np.random.default_rng(1).bytes(500))
    good = (pictures / "dogs" / "img000.png").read_bytes()
    (pictures / "truncated.png").write_bytes(good[: len(good) // 2])
    (pictures / "empty.jpg").write_bytes(b"")
    result = train(small_config(pictures, tmp_path / "run", epochs=1))
    assert sum(result.skipped.values()) == 3
    assert result.train_count + result.val_count == 32


def test_train_and_val_folders_are_honoured(tmp_path):
    from imgret.train import train

    write_pictures(tmp_path / "data" / "train", 12, seed=1)
    write_pictures(tmp_path / "data" / "val", 4, seed=2)
    write_pictures(tmp_path / "data" / "test", 5, seed=3)
    result = train(small_config(tmp_path / "data", tmp_path / "run", epochs=1))
    assert (result.train_count, result.val_count) == (12, 4)
    assert result.layout == "train/val folders"


def test_seeded_split_is_deterministic_and_cache_is_reused(pictures, tmp_path):
    from imgret.train.data import build_cache, split_paths

    config = small_config(pictures, tmp_path / "run").resolved()
    first, second = split_paths(config), split_paths(config)
    assert first == second and len(first.val) == 8 and not set(first.val) & set(first.train)
    cache = build_cache(first.train, 32, str(tmp_path / "cache"))
    stamp = os.stat(cache.npy_path).st_mtime_ns
    again = build_cache(first.train, 32, str(tmp_path / "cache"))
    assert again.npy_path == cache.npy_path and os.stat(again.npy_path).st_mtime_ns == stamp
    assert again.array().dtype == np.uint8 and again.array().shape == (24, 32, 32, 3)


def test_existing_run_is_not_overwritten_without_resume(trained_runs):
    from imgret.train import train

    with pytest.raises(TrainingError, match="--resume"):
        train(small_config("unused", trained_runs["seed"]))


def test_config_round_trips_through_json():
    from imgret.train import TrainConfig

    config = TrainConfig.from_recipe("seed", data="d", out="o", augment=True, invariance=0.3).resolved()
    assert TrainConfig.from_json(config.to_json()) == config
    assert config.latent_dim == 16 and config.recipe == "seed" and config.flip_tta
    with pytest.raises(TrainingError):
        TrainConfig(data="d", out="o", image_size=40).resolved()
