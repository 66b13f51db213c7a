"""``imgret eval`` and its metrics."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from fakes import scene
from PIL import Image

from imgret.runtime.evaluate import balanced_sample, evaluate, rank_metrics, worst_queries


def test_metrics_on_a_known_ranking():
    rel = np.array([[True, False, True, False]])
    m = rank_metrics(rel)
    assert m["P@1"][0] == 1.0
    assert m["mAP@all"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert m["recall@10"][0] == 1.0
    none = rank_metrics(np.array([[False, False]]))
    assert none["mAP@all"][0] == 0.0 and none["recall@10"][0] == 0.0


def test_balanced_sample_is_seeded_and_balanced():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 40
    s = balanced_sample(labels, 30, seed=1)
    assert s == balanced_sample(labels, 30, seed=1)
    got = [labels[i] for i in s]
    assert got.count("a") == got.count("b") == got.count("c") == 10


def _classes(root, per_class=6):
    # Class = dominant colour; members vary a little, so a thumbnail encoder separates them well.
    rng = np.random.default_rng(0)
    for name, colour in {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}.items():
        for i in range(per_class):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            arr = np.clip(np.array(colour) + rng.integers(-30, 30, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"{i}.png")


def test_eval_train_test_layout_scores_a_separable_set_perfectly(imgret, tmp_path, fake_model):
    _classes(tmp_path / "data" / "train")
    _classes(tmp_path / "data" / "test", per_class=2)
    r = imgret("eval", tmp_path / "data", "--model", fake_model, "--json")
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["queries"] == 6 and out["database"] == 18
    assert out["overall"]["mAP@all"] == pytest.approx(1.0)
    assert set(out["per_class"]) == {"red", "green", "blue"}


def test_eval_leave_one_out_and_worst_montage(imgret, tmp_path, fake_model):
    _classes(tmp_path / "data")
    scene(1).save(tmp_path / "data" / "red" / "odd.png")  # an outlier that should rank worst
    out = tmp_path / "worst.png"
    r = imgret("eval", tmp_path / "data", "--model", fake_model, "--queries", "0", "--montage-worst", out,
               "--worst", "2")
    assert r.code == 0, r.stderr
    assert "ALL" in r.stdout and "mAP@all" in r.stdout
    with Image.open(out) as im:
        assert im.height > 100
    # The ranking behind the montage: the outlier is the worst query, clearly worse than every other;
    # each row leaves the query itself out, as its scores do (it was every row's #1 at distance 0).
    report, ev, vecs = evaluate(tmp_path / "data", model=fake_model, queries=0)
    assert ev.leave_one_out and report.queries == 19
    worst = worst_queries(report, vecs, 2, hits=4)
    assert [os.path.basename(w.query) for w in worst][0] == "odd.png"
    ap = dict(report.per_query_ap)
    assert ap[worst[0].query] == min(ap.values()) < 0.5 <= sorted(ap.values())[1]
    assert all(len(w.hits) == 4 and w.query not in [h.path for h in w.hits] for w in worst)
    assert all(w.hits[0].distance > 1e-5 for w in worst)  # no row starts with an exact copy of itself


def test_worst_montage_rows_follow_the_leave_one_out_ranking(tmp_path, fake_model):
    """Each montage row's hits are the query's own ranking with itself left out, so the montage
    shows what the scores measured: hit 1 is the nearest *other* picture."""
    _classes(tmp_path / "data", per_class=3)
    report, ev, vecs = evaluate(tmp_path / "data", model=fake_model, queries=0)
    db_vecs, db_paths, q_vecs, q_paths = vecs
    for row in worst_queries(report, vecs, 9, hits=20):
        assert len(row.hits) == len(db_paths) - 1  # every other picture, and not itself
        assert [h.rank for h in row.hits] == list(range(1, len(db_paths)))
        assert row.query not in {h.path for h in row.hits}
        distances = [h.distance for h in row.hits]
        assert distances == sorted(distances)


def test_eval_needs_classes(imgret, tmp_path, fake_model):
    (tmp_path / "flat").mkdir()
    scene(0).save(tmp_path / "flat" / "a.png")
    r = imgret("eval", tmp_path / "flat", "--model", fake_model)
    assert r.code == 1 and "two class sub-folders" in r.stderr


@pytest.mark.parametrize("name", ["worst.txt", "worst", "worst.gif"])
def test_montage_worst_with_an_unknown_suffix_is_a_usage_error(imgret, tmp_path, fake_model, name):
    _classes(tmp_path / "data", per_class=2)
    r = imgret("eval", tmp_path / "data", "--model", fake_model, "--montage-worst", tmp_path / name)
    assert r.code == 2, r.stderr
    assert ".jpg" in r.stderr and "--montage-worst" in r.stderr
    assert not (tmp_path / name).exists()


def test_eval_html_shows_the_worst_queries_with_wrong_hits_marked(imgret, tmp_path, fake_model):
    _classes(tmp_path / "data")
    scene(1).save(tmp_path / "data" / "red" / "odd.png")  # the worst query: its hits are of other classes
    r = imgret("eval", tmp_path / "data", "--model", fake_model, "--queries", "0", "--worst", "2",
               "--html", tmp_path / "page")
    assert r.code == 0, r.stderr
    page = (tmp_path / "page" / "index.html").read_text()
    assert page.count('class="query"') == 2 and "odd.png (red)" in page
    assert page.count('class="wrong"') >= 1
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / "page" / src).is_file()
