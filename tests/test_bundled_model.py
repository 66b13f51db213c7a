"""The bundled default encoder: present, small, self-describing, and usable with no options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fakes import scene

from imgret import models
from imgret.runtime.encoder import Encoder


def test_default_model_is_bundled_with_a_card_and_fits_the_wheel():
    names = {m.name: m for m in models.bundled()}
    assert models.DEFAULT_MODEL in names
    m = names[models.DEFAULT_MODEL]
    assert m.path.stat().st_size <= 5 * 1024 * 1024
    assert m.card is not None and "imgret train" in m.card.read_text()


def test_default_model_describes_itself_and_was_trained():
    enc = Encoder.default()
    info = enc.info
    assert info.metric == "cosine" and info.l2_normalised
    assert info.training.get("epochs", 0) >= 1 and info.training.get("count", 0) > 1000
    assert len(info.weights_sha256) == 64


def test_default_model_embeds_a_mirror_like_the_original():
    enc = Encoder.default()
    img = np.asarray(scene(7, size=96))
    vecs = enc.embed([img, img[:, ::-1]])
    assert vecs.shape == (2, enc.dim)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert float(vecs[0] @ vecs[1]) > 0.999  # flip averaging is built into the graph


def test_default_model_separates_different_pictures_more_than_copies():
    enc = Encoder.default()
    a, b = np.asarray(scene(1, size=96)), np.asarray(scene(2, size=96))
    brighter = np.clip(a.astype(int) + 20, 0, 255).astype(np.uint8)
    va, vb, vc = enc.embed([a, b, brighter])
    assert float(va @ vc) > float(va @ vb)


def test_index_and_query_work_with_no_model_option(imgret, photos):
    r = imgret("index", photos)
    assert r.code == 0, r.stderr
    q = imgret("query", photos / "scene003.png", "-N", "2", "--json")
    assert q.code == 0 and len(q.stdout.splitlines()) == 2
    listed = json.loads(imgret("models", "--json").stdout)
    assert any(m["default"] and m["name"] == models.DEFAULT_MODEL for m in listed)


@pytest.mark.parametrize("name", [m.name for m in models.bundled()])
def test_every_bundled_model_loads(name):
    assert Encoder.load(name).dim > 0
