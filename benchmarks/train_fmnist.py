"""Training speed on Fashion-MNIST: seconds per epoch on this CPU and the validation loss.

Reads the gzip'd IDX files from /usr/share/datasets/fashion-mnist (or --source), writes the 60,000
training pictures once as PNGs into --work (reused on later runs), then runs
:func:`imgret.train.train` for each architecture. Image sizes: 28 px for ``seed`` (the original
size; a multiple of 4) and 32 px for ``conv`` (its four stride-2 stages need a multiple of 16).
The decode cache is built before the timed epochs, so s/epoch is pure training + validation.

    python benchmarks/train_fmnist.py --max-images 10000 --epochs 1
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
import sys
import tempfile
import time

import numpy as np

SIZES = {"seed": 28, "conv": 32}


def read_idx_images(path: str) -> np.ndarray:
    """uint8 ``[count, rows, cols]`` from a gzip'd IDX3 file (big-endian magic 2051, count, rows, cols)."""
    with gzip.open(path, "rb") as fh:
        magic, count, rows, cols = struct.unpack(">IIII", fh.read(16))
        if magic != 2051:
            raise ValueError(f"{path}: not an IDX3 image file (magic {magic})")
        return np.frombuffer(fh.read(count * rows * cols), dtype=np.uint8).reshape(count, rows, cols)


def write_pngs(images: np.ndarray, folder: str) -> str:
    """Write each picture as ``folder/NNNNN.png`` once; a marker file says the folder is complete."""
    from PIL import Image

    marker = os.path.join(folder, f".complete-{len(images)}")
    if os.path.exists(marker):
        return folder
    os.makedirs(folder, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img, "L").save(os.path.join(folder, f"{i:05d}.png"))
    open(marker, "w").close()
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imgret-fmnist"))
    parser.add_argument("--archs", default="conv,seed")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-images", type=int, default=0, help="0 = all 60,000")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()

    import torch

    from imgret.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    data = write_pngs(read_idx_images(os.path.join(args.source, "train-images-idx3-ubyte.gz")),
                      os.path.join(args.work, "train-png"))
    print(f"PNGs ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    print("| arch | image size | train / val pictures | epochs | s/epoch | final val MSE | device | threads |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs.split(","):
        out = os.path.join(args.work, f"run-{arch}-{args.max_images}-{args.epochs}-{int(time.time())}")
        config = TrainConfig.from_recipe("plain", data=data, out=out, arch=arch, image_size=SIZES[arch], epochs=args.epochs,
                             batch_size=args.batch_size, max_images=args.max_images, workers=args.workers)
        result = train(config, stream=sys.stderr)
        print(f"| {arch} | {SIZES[arch]} | {result.train_count} / {result.val_count} | {result.epochs} | "
              f"{result.seconds_per_epoch:.1f} | {result.val_loss:.5f} | {result.device} | {args.threads} |", flush=True)


if __name__ == "__main__":
    main()
