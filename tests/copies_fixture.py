"""A small photo collection with real copies, made with Pillow: each original is a coloured scene of
shapes; some get a half-size copy, a cropped JPEG, a mirror image and an identical file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps


def original(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A distinct picture: a plain background with six random ellipses and rectangles."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        w, h = rng.integers(15, 70, 2)
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x0 + w, y0 + h), fill=fill)
    return img


def write_collection(folder: Path, originals: int = 8) -> dict[str, list[Path]]:
    """Write the collection; returns each copied original's name -> [original, its copies...].

    p0 has five files (identical, mirror, half size, crop), p1 and p2 three (half size, crop); the
    other originals stand alone.
    """
    folder.mkdir(parents=True, exist_ok=True)
    families: dict[str, list[Path]] = {}
    for s in range(originals):
        img = original(s)
        first = folder / f"p{s}.png"
        img.save(first)
        if s >= 3:
            continue
        family = [first, folder / f"p{s}-small.png", folder / f"p{s}-crop.jpg"]
        img.resize((80, 60), Image.Resampling.BILINEAR).save(family[1])
        img.crop((6, 5, 154, 115)).save(family[2], quality=85)
        if s == 0:
            family += [folder / "p0-flip.png", folder / "p0-same.png"]
            ImageOps.mirror(img).save(family[3])
            family[4].write_bytes(first.read_bytes())
        families[f"p{s}"] = family
    return families
