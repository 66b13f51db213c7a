"""Pictures by content: does a photograph of a bird bring other birds, not other grey pictures?

The set is built from the photographic stamps of Debian's ``tuxpaint-stamps-default`` (GPL-2; photo
cut-outs of real things on transparent backgrounds), labelled by the folder they ship in
(:data:`CLASSES`). Symbol, glyph, flag, road-sign and ``cartoon`` folders are never read, SVG
drawings are skipped, ``*_mirror.png`` files (a stamp's mirror image) are skipped, and the PNG
drawings and renders in the photographic folders, picked out by eye, are listed in
:data:`DRAWINGS` and left out. The ``clothes`` and ``town`` folders are not used: their PNGs are
drawings (hats, shirts) or cartoons (houses) but for three pictures. Each kept stamp is composited on white (as imgret's
decoder does with transparency), shrunk to <= ``SIDE`` px and saved as JPEG q95 under
``DATA/CLASS/``, so the folder is also a valid ``imgret eval`` folder.

Scoring is leave-one-out: every picture is a query against all the others; relevant = same class.
Metrics are ``imgret.runtime.evaluate.rank_metrics``' (P@10, mAP@all, ...). Ties (phash's integer
Hamming distances) are broken by a seeded shuffle of the database, not by file order.

None of these pictures may be trained on: ``models/recipes/photo_data.py`` imports
:data:`CLASSES` to leave every stamp of these folders out of the training photos.

Usage::

    python benchmarks/photo_classes.py --packages /work/debs/x --model imgret/models/photo-conv-v1.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos as photo_source  # noqa: E402  (benchmarks/photos.py; puts the repo on sys.path)

from imgret.runtime.evaluate import rank_metrics  # noqa: E402

SET_VERSION = 1
STAMPS = "tuxpaint/stamps"  # under usr/share
LICENCE = "GPL-2 (usr/share/doc/tuxpaint-stamps-default/copyright: Files: *, Bill Kendrick et al.)"
# class -> stamp folders (under usr/share/tuxpaint/stamps) whose photographs belong to it. Every
# class has at least 11 pictures, so every query has ten relevant others and P@10 can reach 1;
# animals/insects (7 photographs) is left out for that reason.
CLASSES: dict[str, tuple[str, ...]] = {
    "birds": ("animals/birds",),
    "mammals": ("animals/mammals", "animals/marsupials"),
    "fish": ("animals/fish",),
    "fruit": ("food/fruit",),
    "vegetables": ("food/vegetables",),
    "flowers": ("plants/flowers",),
    "vehicles": ("vehicles",),
    "household": ("household",),
    "space": ("space",),
}
SKIP_PARTS = {"cartoon"}  # drawn folders inside photographic categories
# Drawings and flat renders inside the photographic folders (file stems), judged by eye from a
# contact sheet of every stamp: silhouettes, line art, clip art.
DRAWINGS = frozenset({
    "echidna", "hedgehog", "bee", "fly", "7spoke256", "sedan_police", "highlighter", "glass", "mug",
})
SIDE = 512
DEFAULT_DIR = photo_source.REPO / "bench-data" / "photo-classes"
METRICS = ("P@10", "mAP@all", "P@1", "recall@10")


@dataclass(frozen=True)
class Stamp:
    """One labelled photographic stamp."""

    key: str  # "tuxpaint-stamps-default:<folder>/<name>.png"
    path: str
    label: str


def stamp_files(packages: str | Path) -> dict[str, list[Path]]:
    """Every PNG in the class folders, by class, sorted; ``cartoon`` folders and mirror copies left out."""
    root = Path(packages) / "usr" / "share" / STAMPS
    out: dict[str, list[Path]] = {}
    for label, folders in CLASSES.items():
        files = []
        for folder in folders:
            for path in sorted((root / folder).rglob("*.png")):
                if not SKIP_PARTS.intersection(path.relative_to(root).parts) and \
                        not path.stem.endswith("_mirror"):
                    files.append(path)
        out[label] = files
    return out


def collect(packages: str | Path = photo_source.DEFAULT_PACKAGES) -> tuple[list[Stamp], list[str]]:
    """The photographic stamps by class, and the keys of the stamps left out as drawings."""
    root = Path(packages) / "usr" / "share" / STAMPS
    kept, drawings = [], []
    for label, files in stamp_files(packages).items():
        for path in files:
            key = f"tuxpaint-stamps-default:{path.relative_to(root).as_posix()}"
            if path.stem in DRAWINGS:
                drawings.append(key)
            else:
                kept.append(Stamp(key, str(path), label))
    return kept, drawings


def _on_white(path: str):
    from PIL import Image

    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    rgba.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def build(stamps: list[Stamp], out_dir: str | Path = DEFAULT_DIR) -> tuple[list[str], list[str]]:
    """Write the pictures into ``out_dir/CLASS/`` (reused when ``set.json`` matches); (paths, labels)."""
    out = Path(out_dir)
    params = {"version": SET_VERSION, "side": SIDE, "keys": [s.key for s in stamps]}
    index = out / "set.json"
    if index.is_file() and json.loads(index.read_text())["params"] == params:
        saved = json.loads(index.read_text())
        return [str(out / p) for p in saved["paths"]], saved["labels"]
    for old in out.glob("*/*.jpg"):  # a class dropped or renamed must not linger for `imgret eval`
        old.unlink()
    rel_paths = []
    for s in stamps:
        name = s.key.split(":", 1)[1].replace("/", "_").removesuffix(".png")
        (out / s.label).mkdir(parents=True, exist_ok=True)
        _on_white(s.path).save(out / s.label / f"{name}.jpg", quality=95)
        rel_paths.append(f"{s.label}/{name}.jpg")
    labels = [s.label for s in stamps]
    index.write_text(json.dumps({"params": params, "paths": rel_paths, "labels": labels}, indent=0) + "\n")
    return [str(out / p) for p in rel_paths], labels


def score(vectors: np.ndarray, labels: list[str], metric: str, seed: int = 0) -> dict:
    """Leave-one-out retrieval metrics, overall and per class (averaged over queries)."""
    from neardup import _distances  # cosine, l2 and hamming, one place

    lab = np.asarray(labels)
    perm = np.random.default_rng(seed).permutation(len(lab))  # ties broken at random, not by class
    dist = _distances(vectors[perm], vectors[perm], metric)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :-1]
    rel = lab[perm][order] == lab[perm][:, None]
    values = rank_metrics(rel)
    result = {m: float(values[m].mean()) for m in METRICS}
    result["per_class"] = {c: {m: float(values[m][lab[perm] == c].mean()) for m in ("P@10", "mAP@all")}
                           for c in CLASSES if (lab == c).any()}
    result["dim"], result["metric"] = int(vectors.shape[1]), metric
    return result


def _table(results: dict[str, dict]) -> str:
    head = f"{'method':22s} " + " ".join(f"{m:>9s}" for m in METRICS) + f" {'ms/image':>9s}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        cells = " ".join(f"{r[m]:9.3f}" for m in METRICS)
        lines.append(f"{name:22s} {cells} {r['seconds_per_image'] * 1e3:9.2f}")
    return "\n".join(lines)


def _per_class_table(results: dict[str, dict]) -> str:
    classes = list(next(iter(results.values()))["per_class"])
    head = f"{'P@10 per class':22s} " + " ".join(f"{c[:9]:>9s}" for c in classes)
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        lines.append(f"{name:22s} " + " ".join(f"{r['per_class'][c]['P@10']:9.3f}" for c in classes))
    return "\n".join(lines)


def run(paths: list[str], labels: list[str], models: list[str], threads: int, baselines: bool) -> dict:
    """Embed with every baseline and model, and score each; results by method name."""
    results: dict[str, dict] = {}
    if baselines:
        import neardup_baselines

        feats, spent = neardup_baselines.embed_all(paths)
        for name, (_, metric) in neardup_baselines.BASELINES.items():
            results[name] = score(feats[name], labels, metric)
            results[name]["seconds_per_image"] = spent[name] + spent["decode"]
    for model in models:
        from imgret.runtime.encoder import Encoder

        enc = Encoder(model, threads=threads)
        t0 = time.perf_counter()
        vecs = enc.embed(paths)
        results[Path(model).name] = score(vecs, labels, enc.metric)
        results[Path(model).name]["seconds_per_image"] = (time.perf_counter() - t0) / len(paths)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", default=photo_source.DEFAULT_PACKAGES,
                        help="folder tuxpaint-stamps-default was unpacked into with dpkg -x (holds usr/share)")
    parser.add_argument("--data", default=str(DEFAULT_DIR), help="where the labelled set is written and cached")
    photo_source.add_model_arguments(parser)
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    stamps, drawings = collect(args.packages)
    paths, labels = build(stamps, args.data)
    counts = {c: labels.count(c) for c in CLASSES}
    print(f"set: {len(paths)} photographs in {len(CLASSES)} classes ({len(drawings)} drawings left out) "
          f"[{time.perf_counter() - t0:.1f} s, {args.data}]")
    print("  " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    results = run(paths, labels, args.model, args.threads, not args.no_baselines)
    if results:
        print(_table(results))
        print()
        print(_per_class_table(results))
    if args.json:
        payload = {"set": {"pictures": len(paths), "classes": counts, "drawings_left_out": drawings,
                           "version": SET_VERSION}, "results": results}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
