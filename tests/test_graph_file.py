"""imgret's own reader of usearch's vector file (imgret.runtime.graph_file) against usearch itself."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from imgret.runtime import vectors
from imgret.runtime.exact_search import PendingVectors
from imgret.runtime.graph_file import GraphFile

DIM = 24
METRICS = {"cosine": "cos", "l2": "l2sq"}


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    """Vectors in 60 clusters, so that the nearest neighbours are well defined (few near ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, DIM)).astype(np.float32)
    return (centres[rng.integers(0, 60, n)] + 0.3 * rng.normal(size=(n, DIM))).astype(np.float32)


def _saved(tmp_path, n=4000, dtype="f32", metric="cosine", removed=0):
    """A vector file as imgret writes it (its pinned settings), with ``removed`` keys taken out."""
    x = _clustered(n)
    keys = np.arange(n, dtype=np.uint64) * 3 + 7
    index = vectors.build(keys, x, metric, dtype)
    if removed:
        index.remove(keys[:removed])
    path = str(tmp_path / "v.usearch")
    saved = vectors.save(index, path)
    return path, saved, x


def _queries(x: np.ndarray, count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (x[rng.integers(0, len(x), count)] + 0.05 * rng.normal(size=(count, DIM))).astype(np.float32)


def _both(path, saved, dtype, metric):
    view = vectors.open_view(path, saved, DIM)
    graph = vectors.open_graph(path, saved, DIM, dtype, metric)
    return view, graph


@pytest.mark.parametrize(("dtype", "metric"), [("f32", "cosine"), ("f16", "cosine"), ("i8", "cosine"), ("f32", "l2")])
@pytest.mark.parametrize("exact", [False, True])
def test_the_own_reader_answers_as_usearch_does(tmp_path, dtype, metric, exact):
    path, saved, x = _saved(tmp_path, dtype=dtype, metric=metric, removed=300)
    view, graph = _both(path, saved, dtype, metric)
    assert len(graph) == len(view) == 3700
    q = _queries(x)
    theirs = view.search(q, 10, exact=exact)
    ours = graph.search(q, 10, exact=exact)
    assert (ours.counts == 10).all()
    same_rows = np.mean([(theirs.keys[i] == ours.keys[i]).all() for i in range(len(q))])
    assert same_rows >= 0.95  # measured: every row identical; a near tie may order two differently
    assert np.allclose(theirs.distances, ours.distances, atol=1e-5)
    removed = set(range(7, 7 + 3 * 300, 3))
    assert not removed & set(ours.keys.ravel().tolist())  # removed keys are walked through, never returned


def test_a_wider_search_is_answered_from_the_walk_already_made_and_a_new_breadth_walks_again(tmp_path):
    path, saved, x = _saved(tmp_path)
    graph = vectors.open_graph(path, saved, DIM, "f32", "cosine")
    q = _queries(x, 1)
    first = graph.search(q, 11)
    again = graph.search(q, 44)  # within the breadth of 128: the same walk
    assert (again.keys[0][:11] == first.keys[0]).all()
    wide = graph.search(q, 300)  # a breadth of 300: walked again, finds at least as much
    assert wide.counts[0] == 300 and set(again.keys[0].tolist()) <= set(wide.keys[0].tolist()) | {0}


def test_pending_vectors_are_searched_exactly_with_the_stored_rounding(tmp_path):
    x = _clustered(500)
    keys = np.arange(500, dtype=np.uint64) + 1
    for dtype in ("f32", "f16", "i8"):
        theirs = vectors.build(keys, x, "cosine", dtype).search(_queries(x), 5, exact=True)
        pending = vectors.pending_vectors(DIM, "cosine", dtype)
        pending.add(keys[:200], x[:200])
        pending.add(keys[200:], x[200:])
        ours = pending.search(_queries(x), 5)
        assert len(pending) == 500
        assert (theirs.keys == ours.keys).mean() >= 0.95 and np.allclose(theirs.distances, ours.distances, atol=1e-5)


def test_zero_vectors_are_as_far_as_usearch_says():
    pending = PendingVectors(2, "f32", "cos")
    pending.add(np.array([1, 2, 3], dtype=np.uint64), np.array([[0, 0], [1, 0], [0, 2]], dtype=np.float32))
    found = pending.search(np.array([[1, 0]], dtype=np.float32), 3)
    assert found.keys[0].tolist() == [2, 1, 3] and found.distances[0].tolist() == [0.0, 1.0, 1.0]
    zero = pending.search(np.zeros((1, 2), dtype=np.float32), 3)
    assert zero.keys[0][0] == 1 and zero.distances[0].tolist() == [0.0, 1.0, 1.0]


def test_an_empty_file_finds_nothing(tmp_path):
    path = str(tmp_path / "v.usearch")
    saved = vectors.save(vectors.new_index(DIM, "cosine"), path)
    graph = vectors.open_graph(path, saved, DIM, "f32", "cosine")
    assert len(graph) == 0 and graph.search(np.ones((1, DIM), np.float32), 5).counts.tolist() == [0]


@pytest.mark.parametrize(("field", "value"), [(13, 0x65), (14, 0x0C), (33, DIM + 1), (17, 5), (7, 3)])
def test_a_header_that_is_not_what_the_catalogue_says_is_refused(tmp_path, field, value):
    """Metric, vector type, dimensions, count and major version, each changed in the file's header."""
    path, saved, _ = _saved(tmp_path, n=300)
    data = bytearray(open(path, "rb").read())
    rows, cols = struct.unpack_from("<II", data, 0)
    data[8 + rows * cols + field] = value
    open(path, "wb").write(bytes(data))
    with pytest.raises(vectors.IndexDamaged):
        GraphFile(path, dim=DIM, dtype="f32", metric="cos", count=saved.count)


def test_a_neighbour_list_pointing_outside_the_graph_is_damage_found_by_the_search(tmp_path):
    path, saved, x = _saved(tmp_path, n=300)
    graph = GraphFile(path, dim=DIM, dtype="f32", metric="cos", count=saved.count)
    firsts = [graph._start(slot) + 10 + 4 for slot in range(len(graph))]  # each node's first base neighbour
    graph.reset()
    data = bytearray(open(path, "rb").read())
    for at in firsts:
        data[at:at + 4] = struct.pack("<I", 0xFFFFFFF0)
    open(path, "wb").write(bytes(data))
    graph = GraphFile(path, dim=DIM, dtype="f32", metric="cos", count=saved.count)
    with pytest.raises(vectors.IndexDamaged, match="outside"):
        graph.search(_queries(x, 1), 5)


def test_random_damage_to_the_graph_is_never_a_crash(tmp_path):
    """Bytes changed anywhere after the vectors: each open and search either answers or raises
    IndexDamaged (usearch's own view may crash the process on such a file)."""
    path, saved, x = _saved(tmp_path, n=600)
    pristine = open(path, "rb").read()
    rows, cols = struct.unpack_from("<II", pristine, 0)
    rng = random.Random(5)
    outcomes = set()
    for _ in range(150):
        data = bytearray(pristine)
        for _ in range(rng.choice((1, 4, 32))):
            data[rng.randrange(8 + rows * cols, len(data))] = rng.randrange(256)
        open(path, "wb").write(bytes(data))
        try:
            graph = GraphFile(path, dim=DIM, dtype="f32", metric="cos", count=saved.count)
            graph.search(_queries(x, 3), 10)
            graph.search(_queries(x, 3), 10, exact=True)
            outcomes.add("answered")
        except vectors.IndexDamaged:
            outcomes.add("refused")
    assert outcomes == {"answered", "refused"}


# -- through the library ------------------------------------------------------------------------------

def _answers(lib_path, pictures, *, one_shot):
    from imgret.runtime.library import Library

    with Library.open(lib_path, one_shot=one_shot) as lib:
        found = lib.query([str(p) for p in pictures], 5)
        reader = type(lib.vector_file.searchable().settled).__name__
    return [[(h.path, round(h.distance, 5), len(h.copies)) for h in r.hits] for r in found], reader


@pytest.fixture
def scenes(tmp_path, fake_model, monkeypatch):
    """30 indexed scenes, then 2 new and 1 changed picture left pending beside the vector file;
    every search by the graph (no exact search below a size)."""
    from fakes import indexed_scenes, write_scenes

    from imgret.runtime import vector_file
    from imgret.runtime.library import Library

    lib_path, photos = indexed_scenes(tmp_path, fake_model, 30)
    monkeypatch.setattr(vector_file, "PENDING_SHARE", 5)  # up to 6 changes stay pending
    write_scenes(photos, 2, start=40)
    write_scenes(tmp_path / "other", 1, start=50)
    (photos / "scene004.png").write_bytes((tmp_path / "other" / "scene050.png").read_bytes())
    with Library.open_writable(lib_path) as lib:
        report = lib.index(photos, workers=0)
        assert report.vector_file == "pending" and lib.catalogue.pending_count() == 3
    monkeypatch.setattr(vectors, "EXACT_SEARCH_LIMIT", 0)
    return lib_path, photos


def test_a_one_shot_query_reads_the_file_itself_and_answers_as_usearch_does(scenes):
    lib_path, photos = scenes
    asked = [photos / n for n in ("scene001.png", "scene004.png", "scene040.png", "scene017.png")]
    ours, reader = _answers(lib_path, asked, one_shot=True)
    theirs, their_reader = _answers(lib_path, asked, one_shot=False)
    assert (reader, their_reader) == ("GraphFile", "Index")
    assert ours == theirs and all(len(hits) == 5 for hits in ours)
    assert any(p.endswith("scene041.png") for hits in ours for p, _, _ in hits)  # a pending picture found


def test_a_one_shot_query_of_many_pictures_opens_usearch_and_one_without_a_slot_table_too(scenes):
    import sqlite3

    lib_path, photos = scenes
    many = sorted(photos.glob("scene0*.png"))[:9]  # more searches than the own reader is worth
    assert _answers(lib_path, many, one_shot=True)[1] == "Index"
    few = many[:2]
    expected = _answers(lib_path, few, one_shot=False)[0]
    db = sqlite3.connect(lib_path / "catalogue.sqlite")
    db.execute("DELETE FROM meta WHERE key IN ('index_slots_sha256', 'index_slots_size')")  # as older code left it
    db.commit()
    db.close()
    assert _answers(lib_path, few, one_shot=True) == (expected, "Index")


def test_folding_takes_all_of_a_search_of_the_usual_breadth_before_a_wider_one():
    from imgret.runtime.search import wider

    assert [wider(w) for w in (2, 11, 44, 128, 512)] == [8, 44, 128, 512, 2048]  # 11 * 4 = 44; 44 * 4 > 128
