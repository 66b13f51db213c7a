"""Calibrate the duplicate threshold of an imgret encoder on the near-duplicate benchmark.

The set is ``benchmarks/neardup.py``'s (76 originals, six copies of each, 1,200 distractor crops of
other photographs). Pairs:

* **positives** — each copy with its original (456 pairs);
* **negatives** — each original with each distractor (76 x 1,200 = 91,200 pairs); also reported
  separately: originals with each other (2,850 pairs; tiles of one photograph are hard negatives).

At a threshold t a pair is called "copies" when its cosine distance is <= t. Pairwise precision =
true pairs called / all pairs called, recall = true pairs called / 456. The chosen threshold is the
largest that keeps precision >= ``--precision`` on the positives + negatives, rounded down to
``--step``. Then :func:`imgret.runtime.dups.find_duplicates` groups all 1,732 pictures at that
threshold and the table says how many copy/original pairs ended in one group (grouping recall) and how
many grouped pairs were not one original's family (grouping false pairs).

Usage::

    python benchmarks/dup_threshold.py --model imgret/models/photo-conv-v1.onnx
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neardup  # noqa: E402  (puts the repo on sys.path through benchmarks/photos.py)
import photos as photo_source  # noqa: E402

from imgret.runtime.dups import DEFAULT_RATIO, distance, find_duplicates  # noqa: E402
from imgret.runtime.encoder import Encoder  # noqa: E402
from imgret.runtime.neighbour_graph import neighbour_scale  # noqa: E402

TABLE_THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20, 0.30)


def pair_distances(db: np.ndarray, qs: np.ndarray, data: neardup.NearDupSet,
                   ratio: float | None) -> dict[str, np.ndarray]:
    """Distances of the positive pairs, the original-distractor pairs and the original-original pairs.

    With a ``ratio``, a pair that fails the ratio test (its distance over ``ratio`` times the smaller
    neighbourhood scale of the two, the scales measured over all 1,732 pictures as one library) gets
    distance inf: ``find_duplicates`` would never join it, whatever the threshold.
    """
    n_orig, n_db = len(data.originals), len(db)
    scale = neighbour_scale(np.concatenate([db, qs])) if ratio is not None else None
    target = np.asarray(data.query_original)

    def pairs(a_vecs, b_vecs, a_idx, b_idx):
        d = distance(a_vecs, b_vecs, "cosine")  # [len b, len a]
        if scale is not None:
            d = np.where(d <= ratio * np.minimum(scale[b_idx][:, None], scale[a_idx][None, :]), d, np.inf)
        return d

    all_pos = pairs(db[:n_orig], qs, np.arange(n_orig), n_db + np.arange(len(qs)))
    pos = all_pos[np.arange(len(qs)), target]
    neg = pairs(db[:n_orig], db[n_orig:], np.arange(n_orig), np.arange(n_orig, n_db)).ravel()
    hard = pairs(db[:n_orig], db[:n_orig], np.arange(n_orig), np.arange(n_orig))[np.triu_indices(n_orig, 1)]
    return {"pos": pos, "neg": neg, "hard": hard}


def at(d: dict[str, np.ndarray], t: float) -> dict[str, float]:
    """Pairwise precision and recall at threshold ``t``, with and without the original-original pairs."""
    tp = int((d["pos"] <= t).sum())
    fp = int((d["neg"] <= t).sum())
    fp_hard = int((d["hard"] <= t).sum())
    return {"threshold": t, "recall": tp / len(d["pos"]), "precision": tp / max(tp + fp, 1),
            "precision_with_hard": tp / max(tp + fp + fp_hard, 1), "false_pairs": fp, "false_hard": fp_hard}


def choose(d: dict[str, np.ndarray], goal: float, step: float, slack: float) -> float:
    """The threshold to ship: first the largest (a multiple of ``step``) whose pairwise precision is
    still >= ``goal``; then the smallest multiple of ``step`` whose recall is within ``slack`` of that
    one's, because recall flattens long before precision falls and a smaller threshold leaves a margin
    for libraries unlike the benchmark."""
    dist = np.concatenate([d["pos"], d["neg"]])
    positive = np.concatenate([np.ones(len(d["pos"])), np.zeros(len(d["neg"]))])
    order = np.argsort(dist, kind="stable")
    dist, positive = dist[order], positive[order]
    # precision if the threshold sits at each distance (ties: all pairs at that distance are called)
    last = np.r_[dist[1:] != dist[:-1], True] & np.isfinite(dist)
    tp = np.cumsum(positive)[last]
    precision = tp / np.cumsum(np.ones_like(positive))[last]
    ok = np.flatnonzero(precision >= goal)
    best = float(dist[last][ok[-1]]) if len(ok) else 0.0
    largest = math.floor(best / step + 1e-9) * step
    target = at(d, largest)["recall"] - slack
    t = step
    while t < largest and at(d, t)["recall"] < target:
        t += step
    return round(min(t, largest), 6)


def grouping(db: np.ndarray, qs: np.ndarray, data: neardup.NearDupSet, t: float,
             ratio: float | None) -> dict[str, float]:
    """Group every picture of the set and count copy/original pairs together and false pairs."""
    vecs = np.concatenate([db, qs])
    n_orig, n_db = len(data.originals), len(db)
    family = np.concatenate([np.arange(n_orig), np.full(len(data.distractors), -1), data.query_original])
    keys = np.arange(len(vecs), dtype=np.uint64)
    groups = find_duplicates(keys, vecs, threshold=t, ratio=ratio)
    group_of = np.full(len(vecs), -1)
    false_pairs = true_pairs = 0
    for g, group in enumerate(groups):
        idx = [m.key for m in group.members]
        group_of[idx] = g
        for a, b in combinations(idx, 2):
            if family[a] < 0 and family[b] < 0:
                continue  # two crops of one training photo may overlap: no ground truth for the pair
            same = family[a] == family[b]
            true_pairs += same
            false_pairs += not same
    together = [group_of[n_db + i] >= 0 and group_of[n_db + i] == group_of[o]
                for i, o in enumerate(data.query_original)]
    return {"groups": len(groups), "recall": float(np.mean(together)), "grouped_pairs": true_pairs + false_pairs,
            "false_pairs": false_pairs}


def per_transform(d: dict[str, np.ndarray], data: neardup.NearDupSet, t: float) -> dict[str, float]:
    tfs = np.asarray(data.query_transform)
    return {tf: float((d["pos"][tfs == tf] <= t).mean()) for tf in neardup.TRANSFORMS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(photo_source.REPO / "imgret/models/photo-conv-v1.onnx"))
    parser.add_argument("--packages", default=photo_source.DEFAULT_PACKAGES)
    parser.add_argument("--data", default=str(neardup.DEFAULT_DIR))
    parser.add_argument("--precision", type=float, default=0.97, help="pairwise precision to keep")
    parser.add_argument("--step", type=float, default=0.01, help="thresholds tried are multiples of this")
    parser.add_argument("--recall-slack", type=float, default=0.015,
                        help="give up this much recall for the smallest threshold")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ratio", type=float, default=DEFAULT_RATIO, help="ratio test; 0 for none")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

    data = neardup.build(photo_source.collect(args.packages), args.data)
    enc = Encoder(args.model, threads=args.threads)
    db, qs = enc.embed(data.database), enc.embed(data.queries)
    ratio = args.ratio or None
    d = pair_distances(db, qs, data, ratio)
    chosen = choose(d, args.precision, args.step, args.recall_slack)
    rows = [at(d, t) for t in sorted({*TABLE_THRESHOLDS, chosen})]
    print(f"model {Path(args.model).name}, ratio test {ratio}: {len(d['pos'])} positive pairs, {len(d['neg'])} negative pairs "
          f"(+{len(d['hard'])} original-original)")
    print(f"{'threshold':>9s} {'precision':>9s} {'recall':>7s} {'false':>6s} {'P(+hard)':>9s} {'hard':>5s}")
    for r in rows:
        star = " <- chosen" if r["threshold"] == chosen else ""
        print(f"{r['threshold']:9.3f} {r['precision']:9.3f} {r['recall']:7.3f} {r['false_pairs']:6d} "
              f"{r['precision_with_hard']:9.3f} {r['false_hard']:5d}{star}")
    tf = per_transform(d, data, chosen)
    print("recall per transform at the chosen threshold: " + ", ".join(f"{k} {v:.3f}" for k, v in tf.items()))
    g = grouping(db, qs, data, chosen, ratio)
    print(f"grouping all {len(db) + len(qs)} pictures at {chosen:.3f}: {g['groups']} groups, "
          f"copy/original pairs grouped together {g['recall']:.3f}, "
          f"{g['false_pairs']} of {g['grouped_pairs']} grouped pairs with an original or copy join two families")
    print(f"positive distances: median {np.median(d['pos']):.4f}, max {d['pos'].max():.4f}; "
          f"nearest negative {d['neg'].min():.4f}, nearest original-original {d['hard'].min():.4f} "
          "(inf: every such pair fails the ratio test)")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": Path(args.model).name, "ratio": ratio, "chosen": chosen, "table": rows,
                                               "per_transform": tf, "grouping": g}, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
