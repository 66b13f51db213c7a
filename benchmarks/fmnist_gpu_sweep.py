"""How the GPU rows of the Fashion-MNIST table were trained: several recipes at once on one GPU machine.

    python benchmarks/fmnist_gpu_sweep.py main seed-simclr-graph,seed-simclr-graph-t07 330

Trains each listed recipe of ``fmnist_retrieval.RECIPES`` for as many epochs as fit in the given
number of seconds (the second epoch of a probe on 12,000 pictures per recipe estimates the epoch time;
the first version timed a first epoch without workers, which came out three times too high), all recipes in parallel,
then scores each on 1,000 queries with the PyTorch model (a quick check, not the published figure)
and packs ``$OUT/NAME.tar``: weights-only checkpoints (no optimiser state), config, history, plots.
Unpack the tars into the work folder of ``fmnist_retrieval.py`` and run it with the epochs written
into the recipes; it reuses the run folders and exports and scores them. Environment:
``SWEEP_SOURCE`` (the dataset's .gz folder), ``SWEEP_WORK``, ``OUT``, ``SWEEP_WORKERS`` (DataLoader
workers; the second batch used 2), ``SWEEP_PROBE``, ``SWEEP_MAX_IMAGES`` and ``SWEEP_MAX_EPOCHS``
(dry runs).
"""

import glob
import json
import os
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fmnist_retrieval as bench  # noqa: E402

WORK = os.environ.get("SWEEP_WORK", "/tmp/fm")
OUT = os.environ.get("OUT", "/tmp/out")
PROBE = int(os.environ.get("SWEEP_PROBE", "12000"))
MAX_IMAGES = int(os.environ.get("SWEEP_MAX_IMAGES", "0"))  # only for a dry run
MAX_EPOCHS = int(os.environ.get("SWEEP_MAX_EPOCHS", "200"))


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


def probe(name):
    """Time the recipe's second epoch on PROBE pictures, with the workers the real run will use (the
    first epoch carries start-up costs; probing without workers made the 2nd batch's estimate 3x high)."""
    from dataclasses import replace

    import torch

    from imgret.train import train

    torch.set_num_threads(2)
    data = os.path.join(WORK, "fmnist")
    cfg = replace(bench.recipe_config(name, data, WORK, 0, int(os.environ.get("SWEEP_WORKERS", "0"))),
                  out=os.path.join(WORK, f"probe-{name}"), epochs=2, max_images=PROBE, graph_dim=0)
    res = train(cfg)
    with open(os.path.join(cfg.out, "loss.json")) as fh:
        history = json.load(fh)  # write_history's list of per-epoch rows
    print(json.dumps({"name": name, "spe": history[-1]["seconds"], "count": res.train_count}), flush=True)


def quick_eval(name):
    import numpy as np
    import torch

    from imgret.runtime import imageio
    from imgret.runtime.evaluate import balanced_sample, rank_metrics
    from imgret.train.checkpoint import load_encoder

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    run = os.path.join(WORK, f"run-{name}")
    cfg = bench.recipe_config(name, os.path.join(WORK, "fmnist"), WORK, 0)
    emb = load_encoder(run, flip_tta=bench.RECIPES[name]["export"].get("flip_tta", False)).to(dev)
    meta = [m for m in glob.glob(os.path.join(run, "cache", "images-*.json"))][0]
    paths = json.load(open(meta))["paths"]
    arr = np.load(meta[:-5] + ".npy", mmap_mode="r", allow_pickle=False)
    dl = np.array([p.split("/")[-2] for p in paths])
    tp = sorted(glob.glob(os.path.join(WORK, "fmnist", "test", "*", "*.png")))
    tl = [p.split("/")[-2] for p in tp]
    pick = balanced_sample(tl, 1000, 0)
    q = np.stack([imageio.load(tp[i], cfg.image_size) for i in pick])
    ql = np.array([tl[i] for i in pick])

    def run_emb(x):
        out = []
        with torch.no_grad():
            for s in range(0, len(x), 4096):
                out.append(emb(torch.from_numpy(np.ascontiguousarray(x[s:s + 4096])).to(dev)).float())
        return torch.cat(out)

    D, Q = run_emb(arr), run_emb(q)
    order = torch.argsort(Q @ D.T, dim=1, descending=True).cpu().numpy()
    m = rank_metrics(dl[order] == ql[:, None])
    scores = {k: float(np.mean(v)) for k, v in m.items()}
    with open(os.path.join(run, "quick.json"), "w") as fh:
        json.dump(scores, fh)
    return scores


def train_one(name, epochs):
    import torch
    bench.RECIPES[name]["train"]["epochs"] = epochs
    if MAX_IMAGES:
        bench.RECIPES[name]["train"]["max_images"] = MAX_IMAGES
    t = time.monotonic()
    bench.train_recipe(name, os.path.join(WORK, "fmnist"), WORK, 0, 2, int(os.environ.get("SWEEP_WORKERS", "0")))
    log(name, "trained", epochs, "epochs in", round(time.monotonic() - t), "s")
    try:
        log(name, "quick", quick_eval(name))
    except Exception as exc:  # noqa: BLE001
        log(name, "quick eval failed", repr(exc))
    del torch


def pack(name):
    run = os.path.join(WORK, f"run-{name}")
    if not os.path.isdir(run):
        return
    import torch
    stage = os.path.join(WORK, f"pack-{name}")
    os.makedirs(stage, exist_ok=True)
    drop = ("optimizer", "scheduler", "scaler")
    names = []
    for ck in ("last.pt", "best.pt"):
        src = os.path.join(run, ck)
        if os.path.exists(src):
            st = torch.load(src, map_location="cpu", weights_only=True)
            slim = {k: v for k, v in st.items() if k not in drop and not k.startswith("rng")}
            names.append((ck, int(st["epoch"])))
            torch.save(slim, os.path.join(stage, ck))
    epochs = dict(names)
    if epochs.get("best.pt") is not None and epochs.get("best.pt") == epochs.get("last.pt"):
        os.unlink(os.path.join(stage, "best.pt"))
        os.link(os.path.join(stage, "last.pt"), os.path.join(stage, "best.pt"))
    for extra in ("config.json", "loss.json", "loss.png", "recon.png", "quick.json"):
        src = os.path.join(run, extra)
        if os.path.exists(src):
            with open(src, "rb") as a, open(os.path.join(stage, extra), "wb") as b:
                b.write(a.read())
    with tarfile.open(os.path.join(OUT, f"{name}.tar"), "w") as tar:
        tar.add(stage, arcname=f"run-{name}")
    log("packed", name, os.path.getsize(os.path.join(OUT, f"{name}.tar")) // 1024, "KiB", epochs)


def main():
    names = sys.argv[2].split(",")
    untrained = [n for n in names if "train" not in bench.RECIPES.get(n, {})]
    if untrained:  # unknown, or an export of another recipe's run: train that one instead
        raise SystemExit(f"not a training recipe: {', '.join(untrained)}")
    deadline = float(sys.argv[3])  # seconds from now: all training must end by then
    t0 = time.monotonic()
    os.makedirs(OUT, exist_ok=True)
    bench.materialise(os.environ.get("SWEEP_SOURCE", "/usr/share/datasets/fashion-mnist"), WORK)
    log("materialised in", round(time.monotonic() - t0), "s")
    procs = {n: subprocess.Popen([sys.executable, __file__, "probe", n], stdout=subprocess.PIPE, text=True)
             for n in names}
    spe = {}
    for n, p in procs.items():
        out, _ = p.communicate()
        try:
            info = json.loads(out.strip().splitlines()[-1])
            spe[n] = info["spe"] * (57000 if not MAX_IMAGES else MAX_IMAGES * 0.95) / info["count"]
        except Exception:  # noqa: BLE001
            log(n, "probe failed:", out[-500:])
    log("probe done at", round(time.monotonic() - t0), "s; est s/epoch", {k: round(v, 1) for k, v in spe.items()})
    avail = deadline - (time.monotonic() - t0) - 20
    plan = {n: max(1, min(MAX_EPOCHS, int(avail / (s * 1.05)))) for n, s in spe.items()}
    log("plan", plan)
    procs = {n: subprocess.Popen([sys.executable, __file__, "train", n, str(e)]) for n, e in plan.items()}
    hard = t0 + deadline + 40
    for n, p in procs.items():
        try:
            if p.wait(timeout=max(1, hard - time.monotonic())):
                log(n, "failed with exit status", p.returncode)
        except subprocess.TimeoutExpired:
            log(n, "over the deadline; killed")
            p.kill()
    for n in plan:
        try:
            pack(n)
        except Exception as exc:  # noqa: BLE001
            log("pack failed", n, repr(exc))
    log("all done at", round(time.monotonic() - t0), "s")


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        probe(sys.argv[2])
    elif sys.argv[1] == "train":
        train_one(sys.argv[2], int(sys.argv[3]))
    else:
        main()
