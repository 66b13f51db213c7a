"""Estimate an exported encoder's copy threshold (``imgret.dup_threshold``) on the run's own
validation pictures.

Each validation picture gets synthetic copies made with Pillow, one per edit a copy typically
suffers: a crop of 80% of each side, half size, JPEG quality 30, a mirror image, and a colour change
(brightness and saturation up 30%). Positives are each copy with its original; negatives are every
pair of pictures from two different originals. A pair is called a copy as ``imgret dups`` calls it:
distance within the threshold and within ``ratio`` times either picture's 16th-nearest distance (the
ratio test, :mod:`imgret.runtime.dups`). The threshold chosen follows ``benchmarks/dup_threshold.py``:
among multiples of :data:`STEP` up to :data:`LARGEST`, the largest with pairwise precision at least
:data:`PRECISION` sets the reachable recall; the smallest whose recall is within :data:`RECALL_SLACK`
of it is taken, which leaves a margin for libraries unlike the validation set. When no threshold
reaches the precision the smallest step is taken and the note says so.

Validation crops of one photograph overlap, so some "negatives" are near copies of each other: the
estimate errs on the low side, which suits a default that says "copy".
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from imgret.errors import ImageError
from imgret.runtime import imageio
from imgret.runtime.dups import DEFAULT_RATIO, distance
from imgret.runtime.neighbour_graph import DEFAULT_NEIGHBOURS

STEP = 0.01
LARGEST = 0.30
PRECISION = 0.97
RECALL_SLACK = 0.015
EDITS = ("crop", "half", "jpeg30", "mirror", "colour")
Embed = Callable[[np.ndarray], np.ndarray]  # uint8 [N, S, S, 3] -> float32 [N, D]


@dataclass(frozen=True)
class DupEstimate:
    """The threshold and ratio to store in the model, and how they scored on the copies made."""

    threshold: float
    ratio: float
    precision: float
    recall: float
    originals: int
    met: bool  # whether the precision goal was reached

    @property
    def note(self) -> str:
        """One line for the person exporting."""
        goal = "" if self.met else f" (no threshold reached precision {PRECISION}: took the smallest)"
        return (f"copy threshold {self.threshold:g} (ratio test {self.ratio:g}) estimated on {self.originals} "
                f"validation pictures with {len(EDITS)} synthetic copies each: pairwise precision "
                f"{self.precision:.3f}, recall {self.recall:.3f}{goal}")


def synthetic_copies(img: Image.Image) -> list[Image.Image]:
    """One copy of ``img`` per edit in :data:`EDITS`, in that order."""
    img = img.convert("RGB")
    w, h = img.size
    dx, dy = w // 10, h // 10
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=30)
    buffer.seek(0)
    colour = ImageEnhance.Color(ImageEnhance.Brightness(img).enhance(1.3)).enhance(1.3)
    return [img.crop((dx, dy, w - dx, h - dy)),
            img.resize((max(w // 2, 1), max(h // 2, 1)), Image.Resampling.BILINEAR),
            Image.open(buffer).convert("RGB"), ImageOps.mirror(img), colour]


def estimate(originals: Sequence[Image.Image], embed: Embed, size: int, *, metric: str = "cosine",
             ratio: float = DEFAULT_RATIO) -> DupEstimate:
    """Estimate the threshold for an encoder (``embed``, taking ``size``-pixel squares) on ``originals``
    (at least two pictures) and their synthetic copies."""
    if len(originals) < 2:
        raise ValueError("need at least two validation pictures to estimate a copy threshold")
    pictures, family = [], []
    for i, img in enumerate(originals):
        for picture in [img.convert("RGB"), *synthetic_copies(img)]:
            pictures.append(imageio.preprocess(picture, size))
            family.append(i)
    vecs = np.concatenate([embed(np.stack(pictures[s:s + 64])) for s in range(0, len(pictures), 64)])
    dist = np.stack([distance(v, vecs, metric) for v in vecs]).astype(np.float64)
    np.fill_diagonal(dist, np.inf)
    k = min(DEFAULT_NEIGHBOURS, len(vecs) - 1)
    scale = np.partition(dist, k - 1, axis=1)[:, k - 1]
    family = np.asarray(family)
    is_original = np.arange(len(vecs)) % (len(EDITS) + 1) == 0
    positive = (family[:, None] == family[None, :]) & (is_original[:, None] ^ is_original[None, :])
    negative = family[:, None] != family[None, :]
    passes_ratio = dist <= ratio * np.minimum(scale[:, None], scale[None, :])
    return _choose(dist, passes_ratio, positive, negative, len(originals), ratio, metric)


def _choose(dist, passes_ratio, positive, negative, originals: int, ratio: float, metric: str) -> DupEstimate:  # noqa: PLR0913 - the pairs and the settings, passed on
    """The threshold by the rule in the module's notes (upper triangle only: each pair once)."""
    upper = np.triu(np.ones_like(positive), 1)
    unit = 2.0 if metric == "l2" else 1.0  # squared L2 between unit vectors is twice the cosine distance
    grid = np.round(np.arange(1, round(LARGEST / STEP) + 1) * STEP, 4)
    scores = []
    for t in grid:
        called = (dist <= t * unit) & passes_ratio & upper
        true = int((called & positive).sum())
        false = int((called & negative).sum())
        precision = true / (true + false) if true + false else 1.0
        scores.append((float(t * unit), precision, true / max(int((positive & upper).sum()), 1)))
    good = [s for s in scores if s[1] >= PRECISION]
    if not good:
        t, p, r = scores[0]
        return DupEstimate(t, ratio, p, r, originals, met=False)
    reach = good[-1][2]
    t, p, r = next(s for s in good if s[2] >= reach - RECALL_SLACK)
    return DupEstimate(t, ratio, p, r, originals, met=True)


def estimate_for_export(model_bytes: bytes, paths: Sequence[str], size: int, *, count: int = 128) -> DupEstimate | None:
    """:func:`estimate` for an ONNX encoder in memory on up to ``count`` of the run's validation
    ``paths`` (at up to 512 px); None when fewer than two can be read."""
    from imgret.runtime.modelinfo import INPUT_NAME, OUTPUT_NAME
    from imgret.runtime.session import new_session

    originals = []
    for path in paths:
        if len(originals) >= count:
            break
        try:
            img = imageio.decode(imageio.read_image_bytes(path), 512)
        except (ImageError, OSError):  # an unreadable validation picture is simply not used
            continue
        img.thumbnail((512, 512))  # copies of a large photo need not be made at full size
        originals.append(img)
    if len(originals) < 2:
        return None
    session = new_session(model_bytes)
    return estimate(originals, lambda batch: session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0], size)
