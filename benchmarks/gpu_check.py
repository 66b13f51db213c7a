"""A short CUDA check of ``imgret train`` + ``imgret export``: AMP, pinned memory, export parity.

Generates 2,048 structured 64 px pictures, trains one epoch of each architecture on the GPU with
AMP and pinned memory, then exports the conv encoder (and its int8 variant) with the parity check.
Without CUDA it prints a skip line and exits 0, unless ``--cpu`` asks to run the same path on the
CPU (with fewer pictures) to check the script itself.

    python benchmarks/gpu_check.py            # on a CUDA machine, about a minute
    python benchmarks/gpu_check.py --cpu      # plumbing check anywhere
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU when there is no CUDA")
    parser.add_argument("--count", type=int, default=2048)
    parser.add_argument("--work", default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.cpu:
        print("gpu_check: skipped, PyTorch sees no CUDA GPU (pass --cpu to run the plumbing on the CPU)")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    count = args.count if device == "cuda" else min(args.count, 128)
    torch.set_num_threads(min(4, os.cpu_count() or 1))

    from PIL import Image

    from imgret.export import export_encoder
    from imgret.export.samples import synthetic_images
    from imgret.train import TrainConfig, train

    work = args.work or tempfile.mkdtemp(prefix="imgret-gpu-check-")
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for i, img in enumerate(synthetic_images(count, 64, seed=7)):
        Image.fromarray(img).save(os.path.join(data, f"{i:05d}.png"))
    if device == "cuda":
        print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    for arch in ("conv", "seed"):
        config = TrainConfig.from_recipe("plain", data=data, out=os.path.join(work, arch), arch=arch, image_size=64, epochs=1,
                             batch_size=128, workers=2, device=device, amp=True)
        started = time.monotonic()
        result = train(config, stream=sys.stderr)
        print(f"gpu_check: {arch} trained 1 epoch on {result.train_count} pictures in "
              f"{time.monotonic() - started:.1f} s (device {result.device}, AMP {result.device == 'cuda'}), "
              f"val loss {result.val_loss:.5f}")
    exported = export_encoder(os.path.join(work, "conv"), os.path.join(work, "conv.onnx"), int8=True)
    print(f"gpu_check: export parity max abs diff {exported.parity.max_abs_diff:.2e}, "
          f"int8 top-{exported.int8.k} overlap {exported.int8.mean_topk_overlap:.3f}; files in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
