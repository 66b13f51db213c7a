"""Copies in a library: the distance under which two pictures count as copies, and the library's
groups of copies (``imgret dups``).

The rule (threshold and ratio test, see :mod:`imgret.runtime.dups`) belongs to the model, since
another encoder has other distances. It is taken, in this order, from the ``--threshold`` given, the
model's ONNX metadata (``imgret.dup_threshold``, ``imgret.dup_ratio``), the table of bundled models
(:data:`imgret.models.BUNDLED_COPY_DEFAULTS`, for files that predate those keys), and last
:data:`FALLBACK_THRESHOLD`: photo-conv-v1's calibrated cosine distance (0.10), or its equivalent in
squared L2 between unit vectors (0.20). A custom model without the keys gets the fallback, which may
suit it badly: export it again (``imgret export`` estimates one) or pass ``--threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgret.runtime.dups import DEFAULT_RATIO, DupGroup, find_duplicates
from imgret.runtime.encoder import Encoder
from imgret.runtime.filefacts import file_facts
from imgret.runtime.progress import ProgressCallback
from imgret.runtime.vector_file import VectorFile

FALLBACK_THRESHOLD = {"cosine": 0.10, "l2": 0.20}


@dataclass(frozen=True)
class CopyRule:
    """When two pictures are copies: within ``threshold`` (in the model's metric; squared for l2) and,
    unless ``ratio`` is None, passing the ratio test. ``source`` says where the numbers came from:
    ``"given"``, ``"model metadata"``, ``"bundled model"`` or ``"fallback"``."""

    threshold: float
    ratio: float | None
    source: str


@dataclass(frozen=True)
class Duplicates:
    """A library's groups of copies (largest first), every member's path, and the rule used."""

    groups: list[DupGroup]
    paths: dict[int, str]
    rule: CopyRule


def copy_rule(encoder: Encoder, threshold: float | None = None) -> CopyRule:
    """The copy rule for ``encoder``; a ``threshold`` given overrides the model's (its ratio stays)."""
    from imgret import models

    info = encoder.info
    if info.dup_threshold is not None:
        found = (info.dup_threshold, DEFAULT_RATIO if info.dup_ratio is None else info.dup_ratio, "model metadata")
    elif (bundled := models.bundled_copy_default(encoder.fingerprint)) is not None:
        found = (*bundled, "bundled model")
    else:
        found = (FALLBACK_THRESHOLD[encoder.metric], DEFAULT_RATIO, "fallback")
    if threshold is not None:
        return CopyRule(float(threshold), found[1], "given")
    return CopyRule(float(found[0]), found[1], found[2])


def duplicates(  # noqa: PLR0913 - keyword-only options
    vector_file: VectorFile, encoder: Encoder, *, threshold: float | None = None, min_size: int = 2,
    threads: int = 0, progress: ProgressCallback | None = None,
) -> Duplicates:
    """Groups of copies among the library's pictures, largest first (see
    :func:`~imgret.runtime.dups.find_duplicates`).

    Keys and vectors come from the vector file (and the catalogue's pending ones), content hashes from
    the catalogue; sizes, pixel counts and dates are read
    from the files of group members only, to choose the one to keep. Nothing is moved or deleted.
    """
    rule = copy_rule(encoder, threshold)
    catalogue = vector_file.catalogue
    keys, vecs = vector_file.all_vectors()
    known = catalogue.content_hashes()
    hashes = [known.get(int(k)) for k in keys]
    paths: dict[int, str] = {}

    def facts(key: int):
        if key not in paths:
            paths.update(catalogue.paths([key]))
        return file_facts(paths[key])

    groups = find_duplicates(keys, vecs, hashes, threshold=rule.threshold, metric=encoder.metric, facts=facts,
                             ratio=rule.ratio, min_size=min_size, threads=threads, progress=progress)
    return Duplicates(groups, paths, rule)
