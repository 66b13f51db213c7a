"""Fixtures for the torch tests: tiny generated pictures and small trained runs shared per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def write_pictures(folder: Path, count: int, *, size: int = 32, seed: int = 0) -> list[Path]:
    """``count`` small structured RGB PNGs (gradients and a block) in two class subfolders."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    paths = []
    for i in range(count):
        sub = folder / ("cats" if i % 2 else "dogs")
        sub.mkdir(parents=True, exist_ok=True)
        c = rng.uniform(0, 1, (2, 3))
        img = c[0] * yy[..., None] + c[1] * xx[..., None]
        y0, x0 = rng.integers(0, size - 8, 2)
        img[y0: y0 + 8, x0: x0 + 8] = rng.uniform(0, 1, 3)
        path = sub / f"img{i:03d}.png"
        Image.fromarray((np.clip(img / img.max(), 0, 1) * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def pictures(tmp_path) -> Path:
    folder = tmp_path / "data"
    write_pictures(folder, 32)
    return folder


def small_config(data, out, *, recipe: str = "plain", **overrides):
    """A quick run of ``recipe`` (the plain autoencoder unless said) at 32 px, 2 epochs, batches of 8."""
    from imgret.train import TrainConfig

    values = {"image_size": 32, "epochs": 2, "batch_size": 8}
    values.update(overrides)
    return TrainConfig.from_recipe(recipe, data=str(data), out=str(out), **values)


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict[str, Path]:
    """One 2-epoch run per architecture (recipes plain and seed), trained once for the tests that only read them."""
    from imgret.train import train

    root = tmp_path_factory.mktemp("runs")
    write_pictures(root / "data", 32)
    runs = {}
    for arch in ("conv", "seed"):
        # seed: the original project's model (latent 16); conv: the plain autoencoder.
        train(small_config(root / "data", root / arch, recipe="seed" if arch == "seed" else "plain", arch=arch))
        runs[arch] = root / arch
    return runs
