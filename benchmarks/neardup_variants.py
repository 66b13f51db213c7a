"""What do cheap pre- and query-time tricks buy an encoder on the heavy edits, and at what cost?

Scores one imgret encoder on the near-duplicate set (``benchmarks/neardup.py``, set version 3)
four ways, each as a column of R@1 per transform:

* ``plain`` — as ``neardup.py`` does it;
* ``trim`` — every picture (database and queries) first loses uniform borders: edge rows and
  columns whose pixels all lie within :data:`TRIM_TOLERANCE` levels of the line's mean colour are stripped
  while at least half of the side is left (black bars, a flat desktop margin);
* ``turns`` — each query is also embedded turned by 90, 180 and 270 degrees and the nearest of the
  four codes counts (4x the query cost; the database is embedded once);
* ``trim+turns`` — both.

Timings: per-picture cost of the trim (on the decoded picture) and of one embedding, one
onnxruntime thread. Pictures are decoded once at <= ``DECODE_SIDE`` px.

Usage::

    python benchmarks/neardup_variants.py --packages /work/debs/x --model imgret/models/photo-conv-v1.onnx
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neardup  # noqa: E402  (benchmarks/neardup.py; puts the repo on sys.path)
import photos as photo_source  # noqa: E402

from imgret.runtime import imageio  # noqa: E402

TRIM_TOLERANCE = 12
DECODE_SIDE = 256
TURNS = (90, 180, 270)


def _kept_span(flat: np.ndarray) -> tuple[int, int]:
    """Start and end of the lines kept once flat lines are stripped from both ends (>= half kept)."""
    n = len(flat)
    lead = int(np.argmin(flat)) if not flat.all() else n
    trail = int(np.argmin(flat[::-1])) if not flat.all() else n
    start = min(lead, n - n // 2)
    return start, n - min(trail, n - start - n // 2)


def _uniform(lines: np.ndarray) -> np.ndarray:
    """For ``[line, channel, pixel]`` uint8: is every pixel within the tolerance of its line's mean?"""
    mean = lines.mean(axis=2)
    spread = np.maximum(lines.max(axis=2) - mean, mean - lines.min(axis=2))
    return spread.max(axis=1) <= TRIM_TOLERANCE


def trim_uniform_borders(img):
    """Strip uniform edge rows, then columns, keeping at least half of each side.

    A line is uniform when all its pixels lie within ``TRIM_TOLERANCE`` levels of its mean colour.
    """
    a = np.asarray(img.convert("RGB"))
    # lines as the last axis: numpy reduces a last axis of 3 (the channels) slowly
    rows = _uniform(np.ascontiguousarray(a.transpose(0, 2, 1)))
    top, bottom = _kept_span(rows)
    cols = _uniform(np.ascontiguousarray(a[top:bottom].transpose(1, 2, 0)))
    left, right = _kept_span(cols)
    return img.crop((left, top, right, bottom))


def _decode_all(paths: list[str]) -> list:
    return [imageio.decode(imageio.read_image_bytes(p), DECODE_SIDE) for p in paths]


def _timed(fn, items) -> tuple[list | np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn(items)
    return out, (time.perf_counter() - t0) / max(1, len(items))


def _turned_distances(enc, queries: list, db: np.ndarray, metric: str) -> np.ndarray:
    """Per query, the nearest distance over the query and its three turns."""
    dist = neardup._distances(enc.embed(queries), db, metric)
    for degrees in TURNS:
        turned = [q.rotate(degrees, expand=True) for q in queries]
        dist = np.minimum(dist, neardup._distances(enc.embed(turned), db, metric))
    return dist


def _score_dist(dist: np.ndarray, data: neardup.NearDupSet) -> dict[str, float]:
    target = np.asarray(data.query_original)
    d_true = dist[np.arange(len(target)), target]
    hit = (dist <= d_true[:, None]).sum(1) == 1
    tfs = np.asarray(data.query_transform)
    per = {tf: float(hit[tfs == tf].mean()) for tf in neardup.ALL_TRANSFORMS if (tfs == tf).any()}
    per["classic"] = float(hit[np.isin(tfs, neardup.TRANSFORMS)].mean())
    per["heavy"] = float(hit[np.isin(tfs, neardup.HEAVY_TRANSFORMS)].mean())
    return per


def run(model: str, data: neardup.NearDupSet, threads: int = 1) -> tuple[dict, dict]:
    """R@1 per transform for each variant, and the per-picture costs in seconds."""
    from imgret.runtime.encoder import Encoder

    enc = Encoder(model, threads=threads)
    db_imgs, qs_imgs = _decode_all(data.database), _decode_all(data.queries)
    db_trim, t_trim = _timed(lambda xs: [trim_uniform_borders(x) for x in xs], db_imgs)
    qs_trim = [trim_uniform_borders(x) for x in qs_imgs]
    db_plain, t_embed = _timed(enc.embed, db_imgs)
    db_trimmed = enc.embed(db_trim)
    results = {
        "plain": _score_dist(neardup._distances(enc.embed(qs_imgs), db_plain, enc.metric), data),
        "trim": _score_dist(neardup._distances(enc.embed(qs_trim), db_trimmed, enc.metric), data),
        "turns": _score_dist(_turned_distances(enc, qs_imgs, db_plain, enc.metric), data),
        "trim+turns": _score_dist(_turned_distances(enc, qs_trim, db_trimmed, enc.metric), data),
    }
    return results, {"trim": t_trim, "embed": t_embed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=photo_source.DEFAULT_PACKAGES)
    parser.add_argument("--data", default=str(neardup.DEFAULT_DIR), help="where the set is cached")
    parser.add_argument("--model", required=True, metavar="FILE.onnx")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    data = neardup.build(photo_source.collect(args.packages), args.data)
    results, cost = run(args.model, data, args.threads)
    cols = [*neardup.ALL_TRANSFORMS, "classic", "heavy"]
    print(f"{'variant':12s} " + " ".join(f"{c[:8]:>8s}" for c in cols))
    for name, per in results.items():
        print(f"{name:12s} " + " ".join(f"{per[c]:8.3f}" for c in cols))
    print(f"\nper picture: trim {cost['trim'] * 1e3:.2f} ms, one embedding of a decoded picture "
          f"{cost['embed'] * 1e3:.2f} ms (turns: 4 embeddings per query)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
