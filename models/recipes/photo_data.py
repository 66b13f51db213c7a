"""Materialise the training crops for the default photo encoder recipe.

Collects the photographs (``benchmarks/photos.py``), keeps the **train** split only (the held-out
photos are for benchmarks) and writes ``--n`` random crops of ``--size`` px as JPEG quality 90 into
``--out``, with ``crops.csv`` (file, photo, box, flip) and ``photos.json`` (the manifest used) beside
them. Same arguments, same folder, byte for byte.

Example::

    python models/recipes/photo_data.py --out build/photo-crops --n 20000 --size 160
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import photos  # noqa: E402  (benchmarks/photos.py)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to write the crops into (created)")
    parser.add_argument("--n", type=int, default=20000, help="number of crops (default 20000)")
    parser.add_argument("--size", type=int, default=160, help="side of each square crop in px (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="crop sampling seed (default 0)")
    parser.add_argument("--packages", default=photos.DEFAULT_PACKAGES,
                        help="folder the photo .deb files were unpacked into (holds usr/share)")
    parser.add_argument("--split-seed", type=int, default=photos.DEFAULT_SEED,
                        help="train/held-out split seed; keep the default so benchmarks stay unseen")
    args = parser.parse_args(argv)
    manifest = photos.collect(args.packages, seed=args.split_seed)
    train = [p for p in manifest if p.split == "train"]
    out = Path(args.out)
    start = time.perf_counter()
    photos.make_training_crops(train, out, args.n, args.size, args.seed)
    photos.write_manifest(manifest, out / "photos.json")
    print(f"{args.n} crops of {len(train)} train photos ({len(manifest) - len(train)} held out) "
          f"-> {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
