"""``imgret export``'s copy threshold estimate (imgret/export/dup_threshold.py), run here with the
bundled encoder so it needs no torch: synthetic copies are found, strangers are not."""

from __future__ import annotations

import numpy as np
import pytest
from copies_fixture import original
from PIL import Image

pytest.importorskip("torch", reason="the imgret.export package imports torch")
from imgret.export.dup_threshold import EDITS, PRECISION, estimate, estimate_for_export, synthetic_copies
from imgret.models import resolve
from imgret.runtime.encoder import Encoder


def test_every_edit_makes_a_changed_copy():
    img = original(0)
    copies = synthetic_copies(img)
    assert len(copies) == len(EDITS)
    assert copies[0].size == (128, 96) and copies[1].size == (80, 60)
    for copy in copies[2:]:
        assert copy.size == img.size and not np.array_equal(np.asarray(copy), np.asarray(img))


def test_the_bundled_encoder_gets_a_threshold_that_separates_copies_from_strangers():
    enc = Encoder.load("photo-conv-v1")
    got = estimate([original(s) for s in range(12)], enc.embed_arrays, enc.size)
    assert got.met and got.precision >= PRECISION and got.recall >= 0.8
    assert 0.01 <= got.threshold <= 0.30 and got.ratio == 0.5 and got.originals == 12
    assert "validation pictures" in got.note


def test_the_export_hook_reads_pictures_and_runs_the_model_bytes(tmp_path):
    paths = []
    for s in range(6):
        paths.append(str(tmp_path / f"{s}.jpg"))
        original(s).resize((640, 480), Image.Resampling.BILINEAR).save(paths[-1], quality=90)
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    model = resolve("photo-conv-v1")[1].read_bytes()
    got = estimate_for_export(model, [str(tmp_path / "broken.jpg"), *paths], 64, count=5)
    assert got is not None and got.originals == 5
    assert estimate_for_export(model, [str(tmp_path / "broken.jpg"), paths[0]], 64) is None


def test_too_few_pictures_is_an_error():
    with pytest.raises(ValueError, match="at least two"):
        estimate([original(0)], lambda batch: np.ones((len(batch), 4), np.float32), 64)
