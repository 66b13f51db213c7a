"""Benchmark pictures made once and cached: 12 MP JPEGs, 4K PNGs and small JPEGs from real photographs.

The photographs are the Debian wallpaper packages listed in /work/shared/DATA.md (lomiri-wallpapers,
lxqt-themes, mate-backgrounds, plasma-workspace-wallpapers; GPL-2+, CC-BY-SA, CC-BY-4.0, CC0 per file),
extracted with ``apt-get download NAME && dpkg -x NAME_*.deb DIR``. Each benchmark picture is a random
crop of one of them (random scale, position and mirror), resized to the target size, so every file is
distinct. Without the photographs, smooth random textures stand in (said on stderr).

Used by ``benchmarks/throughput.py`` and ``benchmarks/cluster.py``; the cache lives in
``$IMGRET_BENCH_CACHE`` (default ``/work/bench-cache``)/throughput.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CACHE = Path(os.environ.get("IMGRET_BENCH_CACHE", "/work/bench-cache"))
PHOTO_ROOT = CACHE / "x" / "usr" / "share"
KINDS = {  # name: (width, height, format, save options)
    "jpeg12mp": (4000, 3000, "JPEG", {"quality": 90}),
    "png4k": (3840, 2160, "PNG", {"compress_level": 6}),
    "small": (800, 600, "JPEG", {"quality": 90}),  # 0.48 MP
    "tiny": (96, 72, "JPEG", {"quality": 85}),  # for libraries of 10k-100k pictures
}


def source_photos(min_side: int = 1600) -> list[Path]:
    """The large photographs found under :data:`PHOTO_ROOT` (wallpaper packages), sorted."""
    if not PHOTO_ROOT.is_dir():
        return []
    found = []
    for path in sorted(PHOTO_ROOT.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png") or path.stat().st_size < 300_000:
            continue
        if "stellarium" in path.parts or "tuxpaint" in str(path):
            continue  # star maps and stamps are not photographs of the kind we want
        try:
            with Image.open(path) as img:
                if min(img.size) >= min_side:
                    found.append(path)
        except OSError:
            continue
    return found


def _texture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    coarse = rng.integers(0, 256, size=(9, 12, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def _crop(photo: Image.Image, rng: np.random.Generator, width: int, height: int) -> Image.Image:
    scale = rng.uniform(0.6, 1.0)
    w = int(min(photo.width, photo.height * width / height) * scale)
    h = int(w * height / width)
    x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
    out = photo.crop((x, y, x + w, y + h)).resize((width, height), Image.Resampling.BILINEAR)
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else out


def pictures(kind: str, count: int) -> list[str]:
    """``count`` cached pictures of ``kind`` (made on first use), as sorted absolute paths."""
    width, height, fmt, options = KINDS[kind]
    folder = CACHE / "throughput" / kind
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    wanted = [folder / f"{kind}-{i:06d}{suffix}" for i in range(count)]
    missing = [p for p in wanted if not p.exists()]
    if missing:
        _make(missing, width, height, fmt, options)
    return [str(p) for p in wanted]


def _make(paths: list[Path], width: int, height: int, fmt: str, options: dict) -> None:
    photos = [Image.open(p).convert("RGB") for p in source_photos()[:24]]
    if not photos:
        print("no photographs found; using synthetic textures", file=sys.stderr)
    if width <= 200:  # tiny pictures: crop a downscaled photograph, not a 12 MP one, 100,000 times
        photos = [img.resize((img.width // 8, img.height // 8), Image.Resampling.BOX) for img in photos]
    for n, path in enumerate(paths):
        rng = np.random.default_rng(zlib.crc32(path.name.encode()))
        img = _crop(photos[n % len(photos)], rng, width, height) if photos else _texture(rng, width, height)
        tmp = path.with_suffix(".part")
        img.save(tmp, fmt, **options)
        os.replace(tmp, path)
        if n % 1000 == 999:
            print(f"  made {n + 1}/{len(paths)} {path.parent.name}", file=sys.stderr)
