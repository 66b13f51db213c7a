"""The real photographs imgret trains and benchmarks on, and the training crops made from them.

Sources are Debian wallpaper packages unpacked with ``dpkg -x`` (see ``benchmarks/README.md``) and,
when installed, the sample photographs shipped in the scikit-image and scikit-learn wheels. Only
pictures a person judged to be photographs are kept (:data:`PHOTOGRAPHS`); vector art, renders,
abstract gradients, logos and the ``screenshot.*`` thumbnails are left out. Each photograph appears
once: the wallpaper packages ship one photo at many resolutions (hard links, or ``Name_WxH`` files),
so variants are grouped by name and inode and the largest is kept, then a perceptual-hash pass
drops any photo that two packages both ship.

The split is seeded and stable: within each source, photos are ordered by ``sha256(seed:key)`` and
the first 30% are **held out** (benchmarks only); the rest are **train** photos. Adding a photo to a
source moves at most one other photo across the split.

Usage::

    python benchmarks/photos.py --packages /work/debs/x --out bench-data/photos.json
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from imgret.runtime import imageio  # noqa: E402
from imgret.runtime.scan import Found, scan  # noqa: E402

HELD_OUT_SHARE = 0.30
DEFAULT_SEED = 20240611
DEFAULT_PACKAGES = os.environ.get("IMGRET_PHOTO_PACKAGES", "/work/debs/x")

# Photograph groups by package: group key -> (licence, author). A group key is the picture's path
# under usr/share with resolution variants folded (see _group_key). Licences come from each package's
# usr/share/doc/NAME/copyright (per-file stanzas where there are any) and, for plasma, metadata.json.
_PLASMA = "GPL-2+ (debian/copyright); LGPL-3 per metadata.json"
_LXQT = "CC-BY-SA-3.0 (usr/share/lxqt/wallpapers/License)"
PHOTOGRAPHS: dict[str, dict[str, tuple[str, str]]] = {
    "lomiri-wallpapers-16.04": {
        "backgrounds/Bridge_by_Sander_Klootwijk": ("CC-BY-SA-4.0", "Sander Klootwijk"),
        "backgrounds/Dragonfly_by_Bolly": ("CC-BY-SA-4.0", "Bolly"),
        "backgrounds/Picture_0B_by_freespace": ("CC-BY-4.0", 'Trevor "Freespace"'),
        "backgrounds/Picture_1A_by_freespace": ("CC-BY-4.0", 'Trevor "Freespace"'),
        "backgrounds/Wine_by_Jakkub_Mede": ("CC-BY-4.0", "Jakub Mede"),
        "backgrounds/aitzgorri_by_Aitzol_Berasategi": ("CC-BY-4.0", "Aitzol Berasategi"),
        "backgrounds/free_by_Peter_Nerlich": ("CC-BY-SA-4.0", "Peter Nerlich"),
        "backgrounds/friends_by_Aitzol_Berasategi": ("CC-BY-4.0", "Aitzol Berasategi"),
        "backgrounds/greentock_by_Peter_Nerlich": ("CC-BY-SA-4.0", "Peter Nerlich"),
        "backgrounds/life_by_Aitzol_Berasategi": ("CC-BY-4.0", "Aitzol Berasategi"),
        "backgrounds/picosdeeuropa_by_Aitzol_Berasategi": ("CC-BY-4.0", "Aitzol Berasategi"),
        "backgrounds/seeding_by_Clements_Engelhardt": ("CC0-1.0", "Clemens Engelhardt"),
        "backgrounds/sunset_by_Aitzol_Berasategi": ("CC-BY-4.0", "Aitzol Berasategi"),
        # left out: analogpattern (colour-graded texture), umang (abstract gradient)
    },
    "mate-backgrounds": {
        "backgrounds/mate/nature/Aqua": ("GPL-2+", "Charles Barbin"),
        "backgrounds/mate/nature/Blinds": ("GPL-2+", "Lennart Poettering, Andrea Cimitan"),
        "backgrounds/mate/nature/Dune": ("GPL-2+", "Marco Cogoni, Hylke Bons"),
        "backgrounds/mate/nature/FreshFlower": ("GPL-2+", "Jens Ansorg"),
        "backgrounds/mate/nature/Garden": ("GPL-2+", "Charles Barbin"),
        "backgrounds/mate/nature/GreenMeadow": ("GPL-2+", "Timothy Schellhase, Lapo Calamandrei"),
        "backgrounds/mate/nature/LadyBird": ("GPL-2+", "Charles Barbin"),
        "backgrounds/mate/nature/RainDrops": ("GPL-2+", '"blackcombwhistler07"'),
        "backgrounds/mate/nature/Storm": ("GPL-2+", "Sergey Nazarov"),
        "backgrounds/mate/nature/TwoWings": ("GPL-2+", "Charles Barbin, Hylke Bons"),
        "backgrounds/mate/nature/Wood": ("GPL-2+", "Jean-François Fortin Tam"),
        "backgrounds/mate/nature/YellowFlower": ("GPL-2+", "Charles Barbin"),
    },
    "lxqt-themes": {
        "lxqt/wallpapers/Butterfly-Kenneth-Wimer": (_LXQT, "Kenneth Wimer"),
        "lxqt/wallpapers/Valendas": (_LXQT, "LXQt Project Team"),
        "lxqt/wallpapers/after-the-rain": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/appleflower": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/beam": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/butterfly": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/cloud": (_LXQT, "LXQt Project Team"),
        "lxqt/wallpapers/drop": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/flowers": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/fog": (_LXQT, "stefonarch"),
        "lxqt/wallpapers/this-is-not-windows": (_LXQT, "stefonarch"),
    },
    "palapeli-data": {
        # usr/share/doc/palapeli-data/copyright says GPL-2+ for Files: *; the .desktop files name the
        # photographer and the licence of the Wikimedia original.
        "palapeli/collection/castle-maintenon": ("GPL-2+ (Debian); FDL per .desktop", "Eric Pouhier"),
        "palapeli/collection/cincinnati-bridge": ("GPL-2+ (Debian)", ""),
        "palapeli/collection/citrus-fruits": ("GPL-2+ (Debian)", ""),
        "palapeli/collection/european-honey-bee": ("GPL-2+ (Debian)", ""),
        "palapeli/collection/panther-chameleon-female": ("GPL-2+ (Debian)", ""),
    },
    "plasma-workspace-wallpapers": {
        "wallpapers/BytheWater/images": (_PLASMA, "Maciej Wiklo"),
        "wallpapers/ColdRipple/images": (_PLASMA, "Risto Saukonpää"),
        "wallpapers/ColorfulCups/images": (_PLASMA, "Dmitri Popov"),
        "wallpapers/DarkestHour/images": (_PLASMA, "Risto Saukonpää"),
        "wallpapers/EveningGlow/images": (_PLASMA, "Ian Hex"),
        "wallpapers/FallenLeaf/images": (_PLASMA, "Martin Klapetek"),
        "wallpapers/Grey/images": (_PLASMA, "Sigi Sagi"),
        "wallpapers/Kite/images": (_PLASMA, "Risto Saukonpää"),
        "wallpapers/OneStandsOut/images": (_PLASMA, "Risto Saukonpää"),
        "wallpapers/Path/images": (_PLASMA, "Risto Saukonpää"),
        "wallpapers/summer_1am/images": (_PLASMA, "Risto Saukonpää"),
    },
}
# Wheel sample photographs (colour photos only; licences from the skimage.data docstrings and
# sklearn/datasets/images/README.txt). The skimage motorcycle stereo pair is left out: its licence is
# not stated in the wheel.
WHEEL_PHOTOS: dict[str, dict[str, tuple[str, str]]] = {
    "scikit-image": {
        "data/astronaut.png": ("public domain (NASA)", "NASA"),
        "data/chelsea.png": ("CC0", "Stefan van der Walt"),
        "data/coffee.png": ("CC0", "Rachel Michetti"),
        "data/rocket.jpg": ("public domain (SpaceX)", "SpaceX"),
        "data/hubble_deep_field.jpg": ("public domain (NASA)", "NASA/ESA Hubble"),
    },
    "scikit-learn": {
        "datasets/images/china.jpg": ("CC-BY-2.0", "danielbuechele (Flickr)"),
        "datasets/images/flower.jpg": ("CC-BY-2.0", "vultilion (Flickr)"),
    },
}
_WHEEL_MODULES = {"scikit-image": "skimage", "scikit-learn": "sklearn"}
_PACKAGE_ROOTS = ("backgrounds", "lxqt/wallpapers", "palapeli/collection", "wallpapers")


@dataclass(frozen=True)
class Photo:
    """One distinct photograph: where it is, where it came from, under which licence, and its split."""

    key: str  # "package:group", stable across runs and machines
    path: str
    package: str
    licence: str
    author: str
    width: int
    height: int
    bytes: int
    split: str  # "train" or "held-out"


def _group_key(rel: str) -> str:
    """Fold resolution variants of one picture to one key (``wallpapers/X/contents/images/WxH.jpg``)."""
    parts = rel.split("/")
    if len(parts) >= 5 and parts[0] == "wallpapers" and parts[2] == "contents":
        return f"wallpapers/{parts[1]}/{parts[3]}"
    stem = os.path.splitext(rel)[0]
    return re.sub(r"_\d+x\d+$", "", stem)


def _size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def _package_of(group: str) -> str | None:
    for package, groups in PHOTOGRAPHS.items():
        if group in groups:
            return package
    return None


def _debian_photos(share: Path) -> list[tuple[str, str, str, str, str]]:
    """(key, path, package, licence, author) for the largest variant of each listed photograph."""
    best: dict[str, tuple[int, str]] = {}
    for sub in _PACKAGE_ROOTS:
        if not (share / sub).is_dir():
            continue
        for item in scan(share / sub):
            if not isinstance(item, Found) or os.path.basename(item.path).startswith("screenshot."):
                continue
            rel = os.path.relpath(item.path, share).replace(os.sep, "/")
            group = _group_key(rel)
            if _package_of(group) is None:
                continue
            w, h = _size(item.path)
            if group not in best or w * h > best[group][0]:
                best[group] = (w * h, item.path)
    out = []
    for group, (_, path) in sorted(best.items()):
        package = _package_of(group)
        licence, author = PHOTOGRAPHS[package][group]
        out.append((f"{package}:{group}", path, package, licence, author))
    return out


def _wheel_photos() -> list[tuple[str, str, str, str, str]]:
    out = []
    for package, files in WHEEL_PHOTOS.items():
        spec = importlib.util.find_spec(_WHEEL_MODULES[package])  # locates, does not import
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        for rel, (licence, author) in sorted(files.items()):
            if (root / rel).is_file():
                out.append((f"{package}:{rel}", str(root / rel), package, licence, author))
    return out


def _drop_cross_package_copies(found: list[tuple[str, str, str, str, str]]) -> list[tuple]:
    """Keep one of any two photographs whose perceptual hashes nearly agree (the larger one)."""
    import imagehash

    hashed = []
    for entry in found:
        img = imageio.decode(imageio.read_image_bytes(entry[1]), 256)
        w, h = _size(entry[1])
        hashed.append((imagehash.phash(img), w * h, entry))
    hashed.sort(key=lambda t: (-t[1], t[2][0]))
    kept: list[tuple] = []
    for ph, _, entry in hashed:
        if all(ph - other > 6 for other, _ in kept):
            kept.append((ph, entry))
    keep = {e[0] for _, e in kept}
    return [e for e in found if e[0] in keep]


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def collect(packages: str | os.PathLike = DEFAULT_PACKAGES, *, seed: int = DEFAULT_SEED,
            wheels: bool = True) -> list[Photo]:
    """List the distinct photographs under an unpacked package root, with a seeded train/held-out split.

    ``packages`` is the folder the ``.deb`` files were unpacked into (it holds ``usr/share``);
    ``wheels`` adds the scikit-image / scikit-learn sample photographs when those are installed.
    The result is sorted by key, so the same inputs always give the same manifest.
    """
    share = Path(packages) / "usr" / "share"
    found = _debian_photos(share) + (_wheel_photos() if wheels else [])
    found = _drop_cross_package_copies(found)
    by_package: dict[str, list[str]] = {}
    for key, _, package, _, _ in found:
        by_package.setdefault(package, []).append(key)
    held_out: set[str] = set()
    for keys in by_package.values():
        ordered = sorted(keys, key=lambda k: _rank(seed, k))
        held_out.update(ordered[: round(HELD_OUT_SHARE * len(ordered))])
    photos = []
    for key, path, package, licence, author in sorted(found):
        w, h = _size(path)
        photos.append(Photo(key, path, package, licence, author, w, h, os.path.getsize(path),
                            "held-out" if key in held_out else "train"))
    return photos


def write_manifest(photos: list[Photo], path: str | os.PathLike) -> None:
    """Write the manifest as JSON (a list of :class:`Photo` records)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps([asdict(p) for p in photos], indent=1, ensure_ascii=False) + "\n")


def read_manifest(path: str | os.PathLike) -> list[Photo]:
    """Read a manifest written by :func:`write_manifest`."""
    return [Photo(**row) for row in json.loads(Path(path).read_text())]


def load_rgb(path: str, max_side: int | None = None):
    """Decode a photograph with imgret's decoder (EXIF, modes, caps), optionally shrunk to ``max_side``."""
    from PIL import Image

    img = imageio.decode(imageio.read_image_bytes(path), max_side)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


def random_box(rng: np.random.Generator, width: int, height: int, area=(0.10, 1.0),
               aspect=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """A random crop box covering ``area`` of the picture with aspect ratio in ``aspect`` (log-uniform)."""
    for _ in range(20):
        target = rng.uniform(*area) * width * height
        ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            x = int(rng.integers(0, width - w + 1))
            y = int(rng.integers(0, height - h + 1))
            return x, y, x + w, y + h
    side = min(width, height)  # fall back to a centred square
    x, y = (width - side) // 2, (height - side) // 2
    return x, y, x + side, y + side


def make_training_crops(photos: list[Photo], out_dir: str | os.PathLike, n: int, size: int = 160,
                        seed: int = 0, *, max_side: int = 2048, quality: int = 90,
                        counts: dict[str, int] | None = None) -> Path:
    """Write ``n`` random crops of the **train** photos as ``size`` x ``size`` JPEGs in ``out_dir``.

    Each crop covers 10–100% of its photo's area with an aspect ratio between 3:4 and 4:3, is flipped
    left-right half the time, and is resized (bilinear, squashed to a square like imgret's
    preprocessing) to ``size`` px and saved at JPEG quality ``quality``. Crops are spread evenly over
    the photos (or as ``counts``, photo key -> crops, says; then ``n`` is ignored); each photo is
    decoded once (shrunk to ``max_side``) and has its own seeded generator,
    so the folder is reproducible. ``crops.csv`` records each file's photo and box. Held-out photos
    are refused, so benchmarks stay unseen. Returns the folder.
    """
    from PIL import Image

    train = [p for p in photos if p.split == "train"]
    if len(train) != len(photos):
        raise ValueError("make_training_crops takes train photos only; filter on split == 'train'")
    if not train or n < 1:
        raise ValueError("need at least one train photo and n >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = sorted(train, key=lambda p: _rank(seed, p.key))
    if counts is None:
        per_photo = [n // len(order) + (1 if i < n % len(order) else 0) for i in range(len(order))]
    else:
        per_photo = [counts.get(p.key, 0) for p in order]
    rows = ["file,photo,x0,y0,x1,y1,flip"]
    index = 0
    for photo, count in zip(order, per_photo):
        if count == 0:
            continue
        img = load_rgb(photo.path, max_side)
        rng = np.random.default_rng(int(_rank(seed, photo.key)[:16], 16))
        for _ in range(count):
            box = random_box(rng, img.width, img.height)
            flip = bool(rng.random() < 0.5)
            crop = img.crop(box).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            if flip:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            name = f"{index:06d}.jpg"
            crop.save(out / name, quality=quality)
            rows.append(f"{name},{photo.key},{box[0]},{box[1]},{box[2]},{box[3]},{int(flip)}")
            index += 1
    (out / "crops.csv").write_text("\n".join(rows) + "\n")
    return out


def add_model_arguments(parser) -> None:
    """The options both photo benchmarks (neardup.py, photo_classes.py) take for the encoders scored."""
    parser.add_argument("--model", action="append", default=[], metavar="FILE.onnx",
                        help="also evaluate an imgret ONNX encoder (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads for --model")
    parser.add_argument("--no-baselines", action="store_true")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=DEFAULT_PACKAGES,
                        help="folder the .deb files were unpacked into with dpkg -x (holds usr/share)")
    parser.add_argument("--out", default=str(REPO / "bench-data" / "photos.json"), help="manifest to write")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-wheels", action="store_true", help="leave out scikit-image/learn samples")
    args = parser.parse_args(argv)
    photos = collect(args.packages, seed=args.seed, wheels=not args.no_wheels)
    write_manifest(photos, args.out)
    for package in sorted({p.package for p in photos}):
        mine = [p for p in photos if p.package == package]
        held = sum(p.split == "held-out" for p in mine)
        print(f"{package:30s} {len(mine):3d} photos  {len(mine) - held:3d} train  {held:3d} held-out")
    held = sum(p.split == "held-out" for p in photos)
    print(f"{'total':30s} {len(photos):3d} photos  {len(photos) - held:3d} train  {held:3d} held-out -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

