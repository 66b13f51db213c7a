"""Train one Fashion-MNIST recipe for several seeds at once on one GPU, export each to ONNX there.

    OUT=/tmp/out python benchmarks/fmnist_gpu_seeds.py seed-simclr-graph-w64-white 0,1,2

Each seed trains in its own process and work folder (small models are launch-bound, so parallel
processes fill the GPU better than one), then exports with the recipe's export settings
(``fmnist_retrieval.RECIPES``). ``$OUT`` gets ``NAME-sSEED.onnx`` and ``NAME-sSEED.json`` (the run's
history and cost) for each seed; score them on a CPU with ``fmnist_retrieval.py --score-onnx``.
The report of "worst of three seeds" in benchmarks/README.md was made this way. Environment:
``SEEDS_SOURCE`` (the dataset's .gz folder), ``SEEDS_WORK``, ``SEEDS_WORKERS`` (DataLoader workers
per run, default 2), ``SEEDS_MAX_IMAGES`` and ``SEEDS_EPOCHS`` (dry runs).
"""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fmnist_retrieval as bench  # noqa: E402

WORK = os.environ.get("SEEDS_WORK", "/tmp/fm-seeds")
OUT = os.environ.get("OUT", "/tmp/out")


def one(name: str, seed: int) -> None:
    """Train and export ``name`` with ``seed`` in ``WORK/sSEED``."""
    from imgret.export import export_encoder

    trained = bench.run_name(name)
    if os.environ.get("SEEDS_EPOCHS"):
        bench.RECIPES[trained]["train"]["epochs"] = int(os.environ["SEEDS_EPOCHS"])
    if os.environ.get("SEEDS_MAX_IMAGES"):
        bench.RECIPES[trained]["train"]["max_images"] = int(os.environ["SEEDS_MAX_IMAGES"])
    work = os.path.join(WORK, f"s{seed}")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(WORK, "fmnist")
    t0 = time.monotonic()
    seconds = bench.train_recipe(name, data, work, seed, 2, int(os.environ.get("SEEDS_WORKERS", "2")))
    t1 = time.monotonic()
    model = os.path.join(OUT, f"{name}-s{seed}.onnx")
    export_encoder(os.path.join(work, f"run-{trained}"), model, **bench.RECIPES[name]["export"])
    with open(os.path.join(work, f"run-{trained}", "loss.json")) as fh:
        history = json.load(fh)
    with open(os.path.join(OUT, f"{name}-s{seed}.json"), "w") as fh:
        json.dump({"recipe": name, "seed": seed, "epoch_seconds": seconds, "train_wall": t1 - t0,
                   "export_wall": time.monotonic() - t1, "history": history}, fh, indent=1)
    print(f"[{name} s{seed}] trained {t1 - t0:.0f}s wall ({seconds:.0f}s of epochs), exported", flush=True)


def main() -> None:
    name, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    os.makedirs(OUT, exist_ok=True)
    t0 = time.monotonic()
    bench.materialise(os.environ.get("SEEDS_SOURCE", "/usr/share/datasets/fashion-mnist"), WORK)
    print(f"materialised in {time.monotonic() - t0:.0f}s", flush=True)
    procs = [subprocess.Popen([sys.executable, __file__, "one", name, str(s)]) for s in seeds]
    codes = [p.wait() for p in procs]
    print(f"all done in {time.monotonic() - t0:.0f}s; exit codes {codes}", flush=True)
    sys.exit(max(codes))


if __name__ == "__main__":
    if sys.argv[1] == "one":
        one(sys.argv[2], int(sys.argv[3]))
    else:
        main()
