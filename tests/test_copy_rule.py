"""Where the copy threshold comes from: the model's metadata, the bundled table, the fallback, or the
user; and the metadata keys are optional, so older models still load."""

from __future__ import annotations

import pytest
from fakes import make_thumbnail_model

from imgret import models
from imgret.errors import ModelError
from imgret.runtime.copies import FALLBACK_THRESHOLD, copy_rule
from imgret.runtime.dups import DEFAULT_RATIO
from imgret.runtime.encoder import Encoder
from imgret.runtime.modelinfo import ModelInfo


def test_dup_keys_round_trip_and_are_left_out_when_unset():
    info = ModelInfo(model_id="m", input_size=32, embedding_dim=8, dup_threshold=0.07, dup_ratio=0.4)
    props = info.to_metadata()
    assert props["imgret.dup_threshold"] == "0.07" and props["imgret.dup_ratio"] == "0.4"
    back = ModelInfo.from_metadata(props)
    assert (back.dup_threshold, back.dup_ratio) == (0.07, 0.4)
    plain = ModelInfo(model_id="m", input_size=32, embedding_dim=8).to_metadata()
    assert not any(k.startswith("imgret.dup_") for k in plain)
    assert ModelInfo.from_metadata(plain).dup_threshold is None


@pytest.mark.parametrize("value", ["close", "-0.1", "nan", "inf"])
def test_a_bad_dup_threshold_is_refused(value):
    props = ModelInfo(model_id="m", input_size=32, embedding_dim=8).to_metadata()
    props["imgret.dup_threshold"] = value
    with pytest.raises(ModelError, match="dup_threshold"):
        ModelInfo.from_metadata(props)


def test_the_models_own_threshold_wins_and_a_given_one_wins_over_it(tmp_path):
    enc = Encoder(make_thumbnail_model(tmp_path / "calibrated.onnx", dup_threshold=0.03))
    assert copy_rule(enc) == copy_rule(enc).__class__(0.03, DEFAULT_RATIO, "model metadata")
    given = copy_rule(enc, 0.2)
    assert (given.threshold, given.source) == (0.2, "given")


def test_a_model_without_the_keys_gets_the_fallback(fake_model):
    rule = copy_rule(Encoder(fake_model))
    assert (rule.threshold, rule.source) == (FALLBACK_THRESHOLD["cosine"], "fallback")


@pytest.mark.parametrize("name", ["photo-conv-v1", "photo-conv-v1-int8"])
def test_bundled_models_take_their_calibrated_threshold_from_the_table(name):
    enc = Encoder.load(name)
    assert enc.info.dup_threshold is None  # the files are unchanged: libraries' fingerprints still match
    assert models.bundled_copy_default(enc.fingerprint) == (0.10, 0.5)
    rule = copy_rule(enc)
    assert (rule.threshold, rule.ratio, rule.source) == (0.10, 0.5, "bundled model")


def test_the_model_cards_state_the_default_threshold():
    for m in models.bundled():
        assert "cosine distance 0.10" in m.card.read_text(), m.name
