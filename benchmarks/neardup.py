"""Near-duplicate retrieval on real photographs: does a transformed copy find its original first?

The set (made once, cached under ``bench-data/neardup/``, deterministic for a given seed):

* **originals** — the held-out photos of ``benchmarks/photos.py``; when there are fewer than
  ``--min-originals`` of them, each is cut into a g x g grid of non-overlapping tiles (smallest g that
  gives enough), so originals never share pixels. Saved at <= 1024 px, JPEG q95.
* **queries** — one copy of every original per transform: ``crop`` (70–90% of the area, same aspect,
  random place), ``half`` (resized to half size), ``jpeg30`` (JPEG quality 30), ``rotate`` (5–10°
  either way, then cropped to the largest upright rectangle so no borders show), ``colour``
  (brightness, contrast, saturation 0.7–1.3 and a hue turn of 0.02–0.05 either way), ``flip`` (left-right);
  then the heavy edits of ``benchmarks/heavy_edits.py``: ``crop50`` (40–60% of the area), ``rot90``,
  ``rot180``, ``grey``, ``caption`` (a caption band or logo over ~10%), ``letterbox`` (black bars),
  ``blur`` (gaussian, radius 2–3) and ``screenshot`` (scaled into a 1280x800 desktop).
* **distractors** — random crops (10–100% area, aspect 3:4..4:3, <= 800 px) of the *train* photos,
  which are different photographs, so none is a copy of an original.

The database is originals + distractors. Per query, the original's rank r among all database items
(ties counted against it) gives R@1 (r == 1) and AP = 1/r (one relevant item). Results are
reported per transform, over the six classic transforms (``R@1``, ``mAP``) and over the heavy
edits (``heavy R@1``, ``heavy mAP``).

Any embedding function ``fn(paths) -> [N, D] array`` with a metric ("cosine", "l2" or "hamming")
can be evaluated with :func:`evaluate`; ``--model FILE.onnx`` adds an imgret encoder.

Usage::

    python benchmarks/neardup.py                       # baselines
    python benchmarks/neardup.py --model enc.onnx --json results.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heavy_edits  # noqa: E402  (benchmarks/heavy_edits.py)
import photos as photo_source  # noqa: E402  (benchmarks/photos.py; puts the repo on sys.path)

from imgret.runtime import imageio  # noqa: E402

SET_VERSION = 3
TRANSFORMS = ("crop", "half", "jpeg30", "rotate", "colour", "flip")
# Generated after the six above with the same per-original generator, so the first six copies are
# byte for byte those of set version 2.
HEAVY_TRANSFORMS = ("crop50", "rot90", "rot180", "grey", "caption", "letterbox", "blur", "screenshot")
ALL_TRANSFORMS = TRANSFORMS + HEAVY_TRANSFORMS
DEFAULT_DIR = photo_source.REPO / "bench-data" / "neardup"
ORIGINAL_SIDE = 1024
DISTRACTOR_SIDE = 800


# ---------------------------------------------------------------- the set


@dataclass
class NearDupSet:
    """Paths of a generated set: database = originals + distractors; each query names its original."""

    originals: list[str]
    distractors: list[str]
    queries: list[str]
    query_original: list[int]  # index into originals
    query_transform: list[str]
    params: dict = field(default_factory=dict)

    @property
    def database(self) -> list[str]:
        return self.originals + self.distractors


def _rotate_inner(img, degrees: float):
    """Rotate and crop to the largest upright rectangle of the same aspect inside the rotated frame."""
    from PIL import Image

    w, h = img.size
    a = math.radians(abs(degrees))
    # largest w'xh' with w'/h' = w/h inside a w x h frame rotated by a
    scale = 1.0 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
    rot = img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    cw, ch = w * scale, h * scale
    box = (round((w - cw) / 2), round((h - ch) / 2), round((w + cw) / 2), round((h + ch) / 2))
    return rot.crop(box)


def _colour_jitter(img, rng: np.random.Generator):
    from PIL import Image, ImageEnhance

    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    shift = rng.uniform(0.02, 0.05) * rng.choice([-1, 1])
    hsv = np.asarray(img.convert("HSV")).copy()  # Pillow's hue runs 0..255 for a full turn
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + round(shift * 256)) % 256).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def transform(img, name: str, rng: np.random.Generator):
    """Apply one named transform; returns (image, JPEG quality to save it at)."""
    from PIL import Image

    w, h = img.size
    if name == "crop":
        frac = math.sqrt(rng.uniform(0.70, 0.90))
        cw, ch = round(w * frac), round(h * frac)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return img.crop((x, y, x + cw, y + ch)), 90
    if name == "half":
        return img.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS), 90
    if name == "jpeg30":
        return img, 30
    if name == "rotate":
        return _rotate_inner(img, float(rng.uniform(5, 10) * rng.choice([-1, 1]))), 90
    if name == "colour":
        return _colour_jitter(img, rng), 90
    if name == "flip":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 90
    if name in HEAVY_TRANSFORMS:
        return heavy_edits.apply(img, name, rng), 90
    raise ValueError(f"unknown transform {name!r}")


def _stem(photo: photo_source.Photo) -> str:
    return Path(photo.key.split(":", 1)[1]).with_suffix("").as_posix().replace("/", "_")


def _tiles(img, grid: int):
    w, h = img.size
    for r in range(grid):
        for c in range(grid):
            yield r, c, img.crop((c * w // grid, r * h // grid, (c + 1) * w // grid, (r + 1) * h // grid))


def build(manifest: list[photo_source.Photo], out_dir: str | Path = DEFAULT_DIR, *, seed: int = 0,
          min_originals: int = 40, n_distractors: int = 1200) -> NearDupSet:
    """Generate the set into ``out_dir``, or reuse it when ``set.json`` there has the same parameters."""
    from PIL import Image

    out = Path(out_dir)
    held = [p for p in manifest if p.split == "held-out"]
    train = [p for p in manifest if p.split == "train"]
    grid = 1 if len(held) >= min_originals else math.ceil(math.sqrt(min_originals / max(1, len(held))))
    params = {"version": SET_VERSION, "seed": seed, "grid": grid, "n_distractors": n_distractors,
              "held_out": [p.key for p in held], "train": [p.key for p in train]}
    index = out / "set.json"
    if index.is_file():
        saved = json.loads(index.read_text())
        if saved["params"] == params:
            return _from_saved(out, saved)
    for sub in ("originals", "queries", "distractors"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*.jpg"):
            old.unlink()
    originals, queries, q_orig, q_tf = [], [], [], []
    for p in held:
        img = photo_source.load_rgb(p.path, ORIGINAL_SIDE * grid)
        stem = _stem(p)
        for r, c, tile in _tiles(img, grid):
            if max(tile.size) > ORIGINAL_SIDE:
                s = ORIGINAL_SIDE / max(tile.size)
                tile = tile.resize((round(tile.width * s), round(tile.height * s)), Image.Resampling.LANCZOS)
            name = f"{stem}_r{r}c{c}"
            tile.save(out / "originals" / f"{name}.jpg", quality=95)
            tile = Image.open(out / "originals" / f"{name}.jpg").convert("RGB")  # copy what a user has
            rng = np.random.default_rng(int(photo_source._rank(seed, name)[:16], 16))
            for tf in ALL_TRANSFORMS:
                copy, quality = transform(tile, tf, rng)
                copy.save(out / "queries" / f"{name}__{tf}.jpg", quality=quality)
                queries.append(f"queries/{name}__{tf}.jpg")
                q_orig.append(len(originals))
                q_tf.append(tf)
            originals.append(f"originals/{name}.jpg")
    distractors = []
    per_photo = [n_distractors // len(train) + (i < n_distractors % len(train)) for i in range(len(train))]
    for p, count in zip(train, per_photo):
        img = photo_source.load_rgb(p.path, 2048)
        rng = np.random.default_rng(int(photo_source._rank(seed + 1, p.key)[:16], 16))
        stem = _stem(p)
        for j in range(count):
            crop = img.crop(photo_source.random_box(rng, img.width, img.height))
            if max(crop.size) > DISTRACTOR_SIDE:
                s = DISTRACTOR_SIDE / max(crop.size)
                crop = crop.resize((round(crop.width * s), round(crop.height * s)), Image.Resampling.LANCZOS)
            crop.save(out / "distractors" / f"{stem}_{j:03d}.jpg", quality=90)
            distractors.append(f"distractors/{stem}_{j:03d}.jpg")
    saved = {"originals": originals, "distractors": distractors, "queries": queries,
             "query_original": q_orig, "query_transform": q_tf, "params": params}
    index.write_text(json.dumps(saved, indent=0) + "\n")
    return _from_saved(out, saved)


def _from_saved(root: Path, saved: dict) -> NearDupSet:
    paths = {k: [str(root / r) for r in saved[k]] for k in ("originals", "distractors", "queries")}
    return NearDupSet(**paths, query_original=saved["query_original"],
                      query_transform=saved["query_transform"], params=saved["params"])


# ---------------------------------------------------------------- evaluation


def _distances(q: np.ndarray, db: np.ndarray, metric: str) -> np.ndarray:
    q = q.astype(np.float64)
    db = db.astype(np.float64)
    if metric == "cosine":
        qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        dn = db / np.maximum(np.linalg.norm(db, axis=1, keepdims=True), 1e-12)
        return 1.0 - qn @ dn.T
    if metric == "l2":
        return np.maximum((q * q).sum(1)[:, None] + (db * db).sum(1)[None, :] - 2 * q @ db.T, 0.0)
    if metric == "hamming":  # rows of 0/1 bits
        return q @ (1 - db).T + (1 - q) @ db.T
    raise ValueError(f"unknown metric {metric!r}")


def evaluate(fn: Callable[[Sequence[str]], np.ndarray], metric: str, data: NearDupSet) -> dict:
    """Embed the database and the queries with ``fn`` and score: R@1 and mAP overall and per transform.

    ``fn`` takes a list of paths and returns an ``[N, D]`` array; ``seconds_per_image`` is its wall
    time (decode included) averaged over all images embedded.
    """
    start = time.perf_counter()
    db = np.asarray(fn(data.database))
    qs = np.asarray(fn(data.queries))
    elapsed = time.perf_counter() - start
    result = score(db, qs, metric, data)
    result["seconds_per_image"] = elapsed / (len(data.database) + len(data.queries))
    return result


def score(db: np.ndarray, qs: np.ndarray, metric: str, data: NearDupSet) -> dict:
    """Score precomputed database and query vectors (rows in ``data.database`` / ``data.queries`` order)."""
    dist = _distances(qs, db, metric)
    target = np.asarray(data.query_original)
    d_true = dist[np.arange(len(target)), target]
    # the original itself plus every item at least as close: ties count against the original
    rank = (dist <= d_true[:, None]).sum(1)
    hit = rank == 1
    ap = 1.0 / rank
    tfs = np.asarray(data.query_transform)
    present = [tf for tf in ALL_TRANSFORMS if (tfs == tf).any()]
    per = {tf: {"R@1": float(hit[tfs == tf].mean()), "mAP": float(ap[tfs == tf].mean())} for tf in present}
    # "R@1"/"mAP" stay the six classic transforms, so figures compare with set version 2
    classic = np.isin(tfs, TRANSFORMS)
    heavy = np.isin(tfs, HEAVY_TRANSFORMS)
    result = {"R@1": float(hit[classic].mean()), "mAP": float(ap[classic].mean()), "per_transform": per,
              "dim": int(db.shape[1]), "metric": metric}
    if heavy.any():
        result["heavy R@1"] = float(hit[heavy].mean())
        result["heavy mAP"] = float(ap[heavy].mean())
    return result


# ---------------------------------------------------------------- models and the command line


def onnx_embedder(model: str, threads: int = 1) -> tuple[Callable[[Sequence[str]], np.ndarray], str]:
    """An embedding function and metric for an imgret ONNX encoder.

    Uses :class:`imgret.runtime.encoder.Encoder` when the runtime has it; otherwise runs the graph
    with onnxruntime directly: input ``image`` uint8 NHWC at the size in ``imgret.input_size``,
    preprocessed by :func:`imgret.runtime.imageio.load`, output ``embedding``.
    """
    try:
        from imgret.runtime.encoder import Encoder
    except ImportError:
        Encoder = None
    if Encoder is not None:
        enc = Encoder(model, threads=threads)
        return (lambda paths: enc.embed(list(paths))), enc.metric
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    size = int(meta["imgret.input_size"])

    def embed(paths: Sequence[str]) -> np.ndarray:
        rows = []
        for i in range(0, len(paths), 32):
            batch = np.stack([imageio.load(p, size) for p in paths[i:i + 32]])
            rows.append(sess.run(["embedding"], {"image": batch})[0])
        return np.concatenate(rows)

    return embed, meta.get("imgret.metric", "cosine")


def _table(results: dict[str, dict], transforms: Sequence[str] = TRANSFORMS, prefix: str = "") -> str:
    """R@1 per transform and the summary columns ``{prefix}R@1`` / ``{prefix}mAP``, one row per method."""
    head = (f"{'method':22s} " + " ".join(f"{t[:10]:>10s}" for t in transforms)
            + f" {prefix + 'R@1':>10s} {prefix + 'mAP':>10s}")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        cells = " ".join(f"{r['per_transform'][t]['R@1']:10.3f}" for t in transforms)
        lines.append(f"{name:22s} {cells} {r[prefix + 'R@1']:10.3f} {r[prefix + 'mAP']:10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import neardup_baselines as baselines

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=photo_source.DEFAULT_PACKAGES,
                        help="folder the photo .deb files were unpacked into (holds usr/share)")
    parser.add_argument("--data", default=str(DEFAULT_DIR), help="where the set is generated and cached")
    parser.add_argument("--seed", type=int, default=0, help="set generation seed")
    parser.add_argument("--distractors", type=int, default=1200)
    photo_source.add_model_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON ('-' for stdout)")
    args = parser.parse_args(argv)

    manifest = photo_source.collect(args.packages)
    t0 = time.perf_counter()
    data = build(manifest, args.data, seed=args.seed, n_distractors=args.distractors)
    print(f"set: {len(data.originals)} originals (grid {data.params['grid']}x{data.params['grid']} over "
          f"{len(data.params['held_out'])} held-out photos), {len(data.distractors)} distractors, "
          f"{len(data.queries)} queries  [{time.perf_counter() - t0:.1f} s, {args.data}]")
    results: dict[str, dict] = {}
    timing: dict[str, float] = {}
    if not args.no_baselines:
        db, t_db = baselines.embed_all(data.database)
        qs, t_qs = baselines.embed_all(data.queries)
        n_db, n_q = len(data.database), len(data.queries)
        timing = {k: (t_db[k] * n_db + t_qs[k] * n_q) / (n_db + n_q) for k in t_db}
        timing["full-decode"] = baselines.full_decode_seconds(data.originals)
        for name, (_, metric) in baselines.BASELINES.items():
            results[name] = score(db[name], qs[name], metric, data)
            results[name]["seconds_per_image"] = timing[name]
    for model in args.model:
        fn, metric = onnx_embedder(model, args.threads)
        results[Path(model).name] = evaluate(fn, metric, data)
    print(_table(results))
    if any("heavy R@1" in r for r in results.values()):
        print("\nheavy edits (R@1 per edit; summary over the heavy edits only)")
        print(_table(results, HEAVY_TRANSFORMS, "heavy "))
    if timing:
        print(f"\nper image: decode at draft >= {baselines.DRAFT} px {timing['decode'] * 1e3:.2f} ms, "
              f"full-size decode of an original ({ORIGINAL_SIDE} px long side) {timing['full-decode'] * 1e3:.2f} ms")
    for name, r in results.items():
        what = "feature only" if name in timing else "decode + preprocess + model"
        print(f"  {name:22s} {r['seconds_per_image'] * 1e3:7.2f} ms/image ({what})")
    if args.json:
        payload = {"set": {"originals": len(data.originals), "distractors": len(data.distractors),
                           "queries": len(data.queries), "params": {k: v for k, v in data.params.items()
                                                                   if k not in ("held_out", "train")}},
                   "held_out": data.params["held_out"], "timing_seconds_per_image": timing,
                   "results": results}
        text = json.dumps(payload, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
