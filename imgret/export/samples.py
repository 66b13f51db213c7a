"""Pictures to check and calibrate an export with: the run's own validation images, preprocessed by
:func:`imgret.runtime.imageio.load`, or deterministic synthetic pictures when the data is gone.
"""

from __future__ import annotations

import numpy as np

from imgret.errors import ImageError, ImgretError
from imgret.train.config import TrainConfig
from imgret.train.data import split_paths


def validation_images(config: TrainConfig, count: int) -> tuple[np.ndarray, str]:
    """Up to ``count`` uint8 ``[N, S, S, 3]`` pictures and a word saying where they came from."""
    from imgret.runtime.imageio import load

    size = config.image_size
    try:
        split = split_paths(config)
        paths = split.val or split.train
    except ImgretError:
        paths = []
    images = []
    for path in paths:
        if len(images) >= count:
            break
        try:
            images.append(load(path, size))
        except ImageError:
            continue
    if len(images) >= min(count, 2):
        return np.stack(images), "validation images"
    return synthetic_images(count, size), "synthetic images"


def validation_paths(config: TrainConfig) -> list[str]:
    """The run's validation pictures (its training pictures when it had none), or [] when gone."""
    try:
        split = split_paths(config)
    except ImgretError:
        return []
    return list(split.val or split.train)


def synthetic_images(count: int, size: int, seed: int = 1234) -> np.ndarray:
    """Smooth random colour fields with a few blocks: structured enough to exercise the encoder."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size, size, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    for i in range(count):
        a = rng.uniform(0, 1, (3, 3))
        img = a[:, 0, None, None] * yy + a[:, 1, None, None] * xx + a[:, 2, None, None] * np.sin(6 * yy * xx)
        img = np.moveaxis(img, 0, -1)
        for _ in range(3):
            y0, x0 = rng.integers(0, size, 2)
            img[y0: y0 + size // 4, x0: x0 + size // 4] = rng.uniform(0, 1, 3)
        out[i] = np.clip(img / max(img.max(), 1e-6) * 255, 0, 255).astype(np.uint8)
    return out
