"""Classic near-duplicate features the learned encoder has to beat, with decode and feature timings.

Each baseline turns one decoded picture into a vector compared with a metric:

* ``phash`` — ``imagehash.phash`` (64-bit DCT hash of a 32x32 grey thumbnail), Hamming distance;
* ``thumb16-grey`` / ``thumb16-rgb`` — the whole picture squashed to 16x16 (box filter), mean
  removed, unit length, L2 distance;
* ``hsv-hist`` — 8x4x4 hue/saturation/value histogram, square-rooted (Hellinger) and unit length,
  cosine distance (one minus the Bhattacharyya coefficient);
* ``hist+thumb`` — ``hsv-hist`` and ``thumb16-rgb`` concatenated at equal weight, cosine.

Pictures are decoded once with imgret's decoder (JPEG draft scaling to >= ``DRAFT`` px, as a fast
implementation would) and every baseline is computed from that; decode and per-baseline feature
times are kept apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from imgret.runtime import imageio

DRAFT = 128


def phash(img: Image.Image) -> np.ndarray:
    import imagehash

    return imagehash.phash(img).hash.flatten().astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def thumb(img: Image.Image, mode: str) -> np.ndarray:
    small = np.asarray(img.convert(mode).resize((16, 16), Image.Resampling.BOX), dtype=np.float32)
    return _unit(small.ravel() - small.mean())


def hsv_hist(img: Image.Image) -> np.ndarray:
    hsv = np.asarray(img.convert("HSV").resize((128, 128), Image.Resampling.BILINEAR)).reshape(-1, 3)
    hsv = hsv.astype(np.int32)
    idx = (hsv[:, 0] * 8 // 256) * 16 + (hsv[:, 1] * 4 // 256) * 4 + hsv[:, 2] * 4 // 256
    hist = np.bincount(idx, minlength=128).astype(np.float32)
    return _unit(np.sqrt(hist / hist.sum()))


BASELINES = {  # name -> (feature, metric)
    "phash": (phash, "hamming"),
    "thumb16-grey": (lambda im: thumb(im, "L"), "l2"),
    "thumb16-rgb": (lambda im: thumb(im, "RGB"), "l2"),
    "hsv-hist": (hsv_hist, "cosine"),
    "hist+thumb": (lambda im: np.concatenate([hsv_hist(im), thumb(im, "RGB")]) / np.sqrt(2), "cosine"),
}


def embed_all(paths: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every baseline's vectors for ``paths``, and seconds per image: ``decode`` and each baseline."""
    feats: dict[str, list[np.ndarray]] = {name: [] for name in BASELINES}
    spent = dict.fromkeys(["decode", *BASELINES], 0.0)
    for path in paths:
        t0 = time.perf_counter()
        img = imageio.decode(imageio.read_image_bytes(path), DRAFT)
        spent["decode"] += time.perf_counter() - t0
        for name, (feature, _) in BASELINES.items():
            t0 = time.perf_counter()
            feats[name].append(feature(img))
            spent[name] += time.perf_counter() - t0
    n = max(1, len(paths))
    return {k: np.stack(v) for k, v in feats.items()}, {k: v / n for k, v in spent.items()}


def full_decode_seconds(paths: Sequence[str]) -> float:
    """Seconds per image to decode at full resolution (no draft), for reference."""
    t0 = time.perf_counter()
    for path in paths:
        imageio.decode(imageio.read_image_bytes(path))
    return (time.perf_counter() - t0) / max(1, len(paths))
