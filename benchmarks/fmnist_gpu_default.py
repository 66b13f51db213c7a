"""Fashion-MNIST with imgret's default recipe, three seeds, trained on a GPU and scored here (issue 16).

On the GPU machine, with the dataset's four .gz files carried in (from /usr/share/datasets/fashion-mnist/)::

    FMD_SOURCE=shared/fashion-mnist python benchmarks/fmnist_gpu_default.py train

materialises the 60,000 training pictures as PNGs, runs ``imgret train DATA --epochs E --seed S`` (only
the epochs and the seed given, as a user would; DATA = the train folder) for seeds 0, 1, 2 in parallel
processes on the one GPU, exports each with ``imgret export RUN -o seedS.onnx`` (no flags: the run's
config says how), and packs ``$OUT/seedS.tar`` (the ONNX file, config.json, loss.json, loss.png,
recon.png, train.log; when the export failed there, a weights-only ``weights.pt`` instead, exported
by ``score``). Back on this machine (CPU)::

    python benchmarks/fmnist_gpu_default.py score FOLDER_WITH_THE_TARS

scores each ONNX file with :func:`imgret.runtime.evaluate.evaluate` (the code behind ``imgret eval``) on
all 10,000 test queries against the 60,000 training pictures, and prints a table and the worst seed.
Environment: ``FMD_SOURCE`` (the .gz folder), ``FMD_WORK`` (scratch), ``OUT``, ``FMD_EPOCHS``
(default 40), ``FMD_SEEDS`` (default 0,1,2), ``FMD_WORKERS`` (DataLoader workers per run, default 2),
``FMD_STRONG`` (extra ``imgret train`` options for a fourth run named ``strong``, e.g. "--epochs 80
--width 96"), ``FMD_DRY=1`` (a CPU dry run: 600 training pictures, 1 epoch, 64 queries).
Nothing here imports usearch until ``score`` (the GPU machine has none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fmnist_retrieval as bench  # noqa: E402

DRY = os.environ.get("FMD_DRY") == "1"
SOURCE = os.environ.get("FMD_SOURCE", "/usr/share/datasets/fashion-mnist")
WORK = os.environ.get("FMD_WORK", "/tmp/imgret-fmnist-default")
OUT = os.environ.get("OUT", os.path.join(WORK, "out"))
EPOCHS = 1 if DRY else int(os.environ.get("FMD_EPOCHS", "40"))
SEEDS = [int(s) for s in os.environ.get("FMD_SEEDS", "0,1,2").split(",") if s]
WORKERS = os.environ.get("FMD_WORKERS", "2")
PACKED = ("config.json", "loss.json", "loss.png", "recon.png", "train.log")


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def _imgret(*args: str) -> list[str]:
    return [sys.executable, "-c", "from imgret.cli import main; main()", *args]


def _runs() -> dict[str, list[str]]:
    """Run name -> its ``imgret train`` options beyond DATA and --out."""
    runs = {f"seed{s}": ["--epochs", str(EPOCHS), "--seed", str(s)] for s in SEEDS}
    strong = os.environ.get("FMD_STRONG", "").split()
    if strong and not DRY:
        runs["strong"] = strong
    machine = ["--workers", WORKERS]
    return {name: opts + machine for name, opts in runs.items()}


def _data() -> str:
    """The training pictures as PNGs (DRY: the first 600 training and 600 test pictures)."""
    root = bench.materialise(SOURCE, WORK, 600 if DRY else 0)
    return os.path.join(root, "train")


def train_all() -> None:
    """Train, export and pack every run, all in parallel; fail loudly if any run fails."""
    started = time.monotonic()
    os.makedirs(OUT, exist_ok=True)
    data = _data()
    log("pictures ready in", round(time.monotonic() - started), "s")
    procs = {}
    runs = _runs()
    # Each run's own share of the CPU threads: oversubscribed OpenMP threads spin and stall every run.
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // (2 * len(runs)))))
    for name, opts in runs.items():
        run = os.path.join(WORK, f"run-{name}")
        shutil.rmtree(run, ignore_errors=True)
        os.makedirs(run)
        script = (f"{' '.join(map(repr, _imgret('train', data, '--out', run, *opts)))} && "
                  f"{' '.join(map(repr, _imgret('export', run, '-o', os.path.join(run, name + '.onnx'))))}")
        logfile = open(os.path.join(run, "train.log"), "w")  # noqa: SIM115 - closed when the process ends
        procs[name] = (subprocess.Popen(["bash", "-c", script], stdout=logfile, stderr=subprocess.STDOUT,
                                          env=env), logfile)
        log("started", name, " ".join(opts))
    failed = []
    for name, (proc, logfile) in procs.items():
        code = proc.wait()
        logfile.close()
        log(name, "finished with status", code, "after", round(time.monotonic() - started), "s")
        if code:
            failed.append(name)
        _pack(name)
    log("all done in", round(time.monotonic() - started), "s")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see train.log in their tars)")


def _slim_checkpoint(run: str) -> str | None:
    """When the export failed there (no onnx or onnxruntime): best.pt without optimiser and RNG states,
    small enough to carry back and export here with ``imgret export``."""
    best = os.path.join(run, "best.pt")
    if not os.path.exists(best):
        return None
    import torch

    state = torch.load(best, map_location="cpu", weights_only=True)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "scheduler", "scaler") and not k.startswith("rng")}
    torch.save(slim, os.path.join(run, "weights.pt"))
    return "weights.pt"


def _pack(name: str) -> None:
    run = os.path.join(WORK, f"run-{name}")
    exported = os.path.exists(os.path.join(run, f"{name}.onnx"))
    extra = () if exported else tuple(filter(None, [_slim_checkpoint(run)]))
    with tarfile.open(os.path.join(OUT, f"{name}.tar"), "w") as tar:
        for file in (f"{name}.onnx", *extra, *PACKED):
            path = os.path.join(run, file)
            if os.path.exists(path):
                tar.add(path, arcname=f"{name}/{file}")
    log("packed", name, os.path.getsize(os.path.join(OUT, f"{name}.tar")) // 1024, "KiB")


def score_all(folder: str) -> None:
    """Unpack the tars in ``folder`` and score each ONNX file on all 10,000 queries (DRY: 64)."""
    from imgret.runtime.evaluate import evaluate

    root = bench.materialise(SOURCE, WORK, 600 if DRY else 0)
    queries = 64 if DRY else 0
    rows = {}
    for tar_name in sorted(f for f in os.listdir(folder) if f.endswith(".tar")):
        with tarfile.open(os.path.join(folder, tar_name)) as tar:
            tar.extractall(os.path.join(WORK, "scored"), filter="data")
        name = tar_name[:-4]
        unpacked = os.path.join(WORK, "scored", name)
        if not os.path.exists(os.path.join(unpacked, f"{name}.onnx")):  # exported here instead
            from imgret.export import export_encoder

            export_encoder(os.path.join(unpacked, "weights.pt"), os.path.join(unpacked, f"{name}.onnx"))
        report, _, _ = evaluate(root, model=os.path.join(unpacked, f"{name}.onnx"), queries=queries)
        rows[name] = dict(report.overall)
        history = json.load(open(os.path.join(unpacked, "loss.json")))  # noqa: SIM115
        rows[name]["train_seconds"] = round(sum(r["seconds"] for r in history), 1)
        log(name, {k: round(v, 4) for k, v in rows[name].items()})
    cols = ["mAP@all", "P@10", "P@1", "mAP@100", "train_seconds"]
    print("| run | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.4g}" for c in cols) + " |")
    seeds = [r for n, r in rows.items() if n.startswith("seed")]
    if seeds:
        print(f"worst of {len(seeds)} seeds: mAP@all {min(r['mAP@all'] for r in seeds):.3f}, "
              f"P@10 {min(r['P@10'] for r in seeds):.3f} (goal: 0.58 / 0.85)")
    with open(os.path.join(WORK, "scores.json"), "w") as fh:
        json.dump({"queries": queries, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "train":
        train_all()
    elif len(sys.argv) == 3 and sys.argv[1] == "score":
        score_all(sys.argv[2])
    else:
        raise SystemExit(__doc__)
