"""Materialise the training crops for a photo encoder recipe, and the manifest of every photo used.

Two data sets:

* ``--set v1`` (photo-conv-v1): the 59 photographs of ``benchmarks/photos.py`` (Debian wallpapers,
  scikit-image / scikit-learn samples); crops spread evenly over their 40 **train** photos.
* ``--set v2`` (default; photo-conv-v2): those 59 with the same split, plus every extra source of
  ``models/recipes/photo_sources.py`` (more scikit-image pictures, matplotlib's Grace Hopper,
  stellarium-data's nebula photographs, tuxpaint's photographic stamps outside the class
  benchmark). An extra photo whose perceptual hash is within 6 bits of one already kept *and* whose
  16x16 colour thumbnail nearly agrees with it is dropped as a copy. The extras are split per package like the 59: ``sha256(seed:key)`` order, the first
  30% **held out**. The class benchmark's 240 stamps are listed as held out too. Crops are shared
  between packages in proportion to the square root of each package's train photos (so 300
  nebulae do not drown 40 wallpapers), then evenly over a package's photos.

Held-out photos never give a training crop: the near-duplicate benchmark's originals are the
held-out wallpapers, and the class benchmark's pictures are held out whole. ``photos.json`` beside
the crops is the manifest (key, path, package, licence, author, size, split of every photo) and
``crops.csv`` says which photo and box each crop came from. Same arguments, same folder, byte for
byte.

Example::

    python models/recipes/photo_data.py --out build/photo-crops --n 40000 --size 96
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import photo_sources  # noqa: E402  (models/recipes/photo_sources.py)
import photos  # noqa: E402  (benchmarks/photos.py)


def _signature(path: str):
    """phash and a 16x16 RGB thumbnail vector (unit length, mean removed) of a picture."""
    import imagehash
    import neardup_baselines

    from imgret.runtime import imageio

    img = imageio.decode(imageio.read_image_bytes(path), 256)
    return imagehash.phash(img), neardup_baselines.thumb(img, "RGB")


def _same(a, b) -> bool:
    # phash alone calls any two dark sky pictures with a bright middle copies (63 false pairs among
    # the nebulae), so a copy must also agree in its colour thumbnail; the one true copy scored 0.0
    # and the closest false pair 0.30.
    return a[0] - b[0] <= 6 and float(np.linalg.norm(a[1] - b[1])) < 0.15


def _new_photos(base: list[photos.Photo], extras: list[photo_sources.Entry]) -> list[photo_sources.Entry]:
    """The extras that are not a copy (see :func:`_same`) of a base photo or of an earlier extra."""
    kept_sigs = [_signature(p.path) for p in base]
    kept = []
    for entry in extras:
        sig = _signature(entry[1])
        if not any(_same(sig, other) for other in kept_sigs):
            kept_sigs.append(sig)
            kept.append(entry)
    return kept


def _as_photo(entry: photo_sources.Entry, split: str) -> photos.Photo:
    key, path, package, licence, author = entry
    w, h = photos._size(path)
    return photos.Photo(key, path, package, licence, author, w, h, os.path.getsize(path), split)


def collect_v2(packages: str, seed: int) -> tuple[list[photos.Photo], int]:
    """The v2 manifest (the 59 with their split, the extras split per package, the class set held
    out), sorted by key; and how many extras were dropped as copies."""
    base = photos.collect(packages, seed=seed)
    extras = photo_sources.extra_photos(packages)
    fresh = _new_photos(base, extras)
    by_package: dict[str, list[str]] = {}
    for entry in fresh:
        by_package.setdefault(entry[2], []).append(entry[0])
    held: set[str] = set()
    for keys in by_package.values():
        ordered = sorted(keys, key=lambda k: photos._rank(seed, k))
        held.update(ordered[: round(photos.HELD_OUT_SHARE * len(ordered))])
    out = list(base) + [_as_photo(e, "held-out" if e[0] in held else "train") for e in fresh]
    out += [_as_photo(e, "held-out") for e in photo_sources.class_benchmark_stamps(packages)]
    return sorted(out, key=lambda p: p.key), len(extras) - len(fresh)


def crop_counts(train: list[photos.Photo], n: int) -> dict[str, int]:
    """``n`` crops shared by package in proportion to sqrt(train photos), then evenly within one."""
    per_package = Counter(p.package for p in train)
    weights = {k: math.sqrt(v) for k, v in per_package.items()}
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    shares = {k: math.floor(v) for k, v in exact.items()}
    # largest remainders get the crops rounding left over, so the total is exactly n
    for k in sorted(exact, key=lambda k: (shares[k] - exact[k], k))[: n - sum(shares.values())]:
        shares[k] += 1
    counts: dict[str, int] = {}
    for package in sorted(per_package):
        keys = sorted(p.key for p in train if p.package == package)
        share = shares[package]
        for i, key in enumerate(keys):
            counts[key] = share // len(keys) + (1 if i < share % len(keys) else 0)
    return counts


def _summary(manifest: list[photos.Photo]) -> str:
    lines = [f"{'source':28s} {'photos':>6s} {'train':>6s} {'held-out':>8s}"]
    for package in sorted({p.package for p in manifest}):
        mine = [p for p in manifest if p.package == package]
        held = sum(p.split == "held-out" for p in mine)
        lines.append(f"{package:28s} {len(mine):6d} {len(mine) - held:6d} {held:8d}")
    held = sum(p.split == "held-out" for p in manifest)
    lines.append(f"{'total':28s} {len(manifest):6d} {len(manifest) - held:6d} {held:8d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the crops into (created)")
    parser.add_argument("--set", choices=("v1", "v2"), default="v2", help="which photographs (default v2)")
    parser.add_argument("--n", type=int, default=20000, help="number of crops (default 20000)")
    parser.add_argument("--size", type=int, default=160, help="side of each square crop in px (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="crop sampling seed (default 0)")
    parser.add_argument("--packages", default=photos.DEFAULT_PACKAGES,
                        help="folder the .deb files were unpacked into with dpkg -x (holds usr/share)")
    parser.add_argument("--split-seed", type=int, default=photos.DEFAULT_SEED,
                        help="train/held-out split seed; keep the default so benchmarks stay unseen")
    parser.add_argument("--manifest-only", action="store_true", help="write photos.json and stop")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.set == "v1":
        manifest, dropped = photos.collect(args.packages, seed=args.split_seed), 0
    else:
        manifest, dropped = collect_v2(args.packages, args.split_seed)
    out = Path(args.out)
    photos.write_manifest(manifest, out / "photos.json")
    print(_summary(manifest))
    print(f"({dropped} extra pictures dropped as near copies)")
    train = [p for p in manifest if p.split == "train"]
    if not args.manifest_only:
        counts = None if args.set == "v1" else crop_counts(train, args.n)
        photos.make_training_crops(train, out, args.n, args.size, args.seed, counts=counts)
    print(f"{len(train)} train photos -> {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
