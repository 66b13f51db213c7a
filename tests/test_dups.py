"""Copy groups from vectors and hashes: planted groups found, chaining refused, identical files grouped,
the right member kept, largest first, the threshold respected."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgret.runtime import dups, neighbour_graph
from imgret.runtime.dups import FileFacts, facts_from_arrays, find_duplicates
from imgret.runtime.filefacts import file_facts, pixel_count

DIM = 32


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def library(n_random: int, families: list[int], *, noise: float = 0.01, seed: int = 0):
    """Random unit vectors (mutually far apart in 32 dims) plus planted families: family f has
    ``families[f]`` near copies of random row f. Returns keys, vectors and the expected key sets."""
    rng = np.random.default_rng(seed)
    base = unit(rng.normal(size=(n_random, DIM)))
    rows, expected = [base], []
    next_key = n_random
    for f, size in enumerate(families):
        copies = unit(base[f] + rng.normal(scale=noise, size=(size, DIM)))
        rows.append(copies)
        expected.append({f, *range(next_key, next_key + size)})
        next_key += size
    return np.arange(next_key, dtype=np.uint64), np.concatenate(rows), expected


def key_sets(groups) -> list[set[int]]:
    return [{m.key for m in g.members} for g in groups]


def test_planted_copy_groups_are_found_and_nothing_else():
    keys, vecs, expected = library(300, [3, 1, 2])
    groups = find_duplicates(keys, vecs, threshold=0.02)
    assert sorted(map(sorted, key_sets(groups))) == sorted(map(sorted, expected))


def test_groups_come_largest_first():
    keys, vecs, expected = library(200, [1, 4, 2])
    sizes = [len(g) for g in find_duplicates(keys, vecs, threshold=0.02)]
    assert sizes == [5, 3, 2]


def test_every_pair_in_a_group_is_within_the_threshold():
    # a tight cloud wider than the threshold: it must be cut into groups, never one chain
    rng = np.random.default_rng(1)
    centre = rng.normal(size=DIM)
    vecs = unit(centre + rng.normal(scale=0.06, size=(40, DIM)))
    keys = np.arange(40, dtype=np.uint64)
    threshold = 0.01
    groups = find_duplicates(keys, vecs, threshold=threshold, ratio=None)
    assert groups, "the cloud holds pairs under the threshold"
    for g in groups:
        idx = [m.key for m in g.members]
        within = 1.0 - vecs[idx] @ vecs[idx].T
        assert within.max() <= threshold + 1e-6
        for m in g.members:
            assert m.distance_to_keep == pytest.approx(float(1.0 - vecs[m.key] @ vecs[g.keep]), abs=1e-5)


def test_a_chain_does_not_join_its_far_ends():
    # A ~ B and B ~ C under the threshold, but A and C are twice as far apart
    theta = 0.1
    angles = [0.0, theta, 2 * theta]
    vecs = np.zeros((3, DIM), np.float32)
    vecs[:, 0], vecs[:, 1] = np.cos(angles), np.sin(angles)
    threshold = 1.0 - np.cos(theta) + 1e-4  # just admits A-B and B-C, not A-C
    groups = find_duplicates(np.array([10, 11, 12], np.uint64), vecs, threshold=threshold, ratio=None)
    for g in groups:
        assert not {10, 12} <= {m.key for m in g.members}
    assert sum(len(g) for g in groups) == 2  # B joins one end; the other end stays alone


def test_identical_hashes_group_even_when_vectors_disagree():
    rng = np.random.default_rng(2)
    vecs = unit(rng.normal(size=(5, DIM)))  # all far apart
    hashes = ["h1", "x", "h1", None, "h1"]
    groups = find_duplicates(np.arange(5, dtype=np.uint64), vecs, hashes, threshold=0.01)
    assert key_sets(groups) == [{0, 2, 4}]
    assert all(m.identical for m in groups[0].copies)
    assert all(m.distance_to_keep == 0.0 for m in groups[0].members)


def test_identical_files_join_their_near_copies():
    keys, vecs, _ = library(100, [1])  # key 0 and its near copy 100
    vecs = np.concatenate([vecs, vecs[:1]])  # key 101: another file with key 0's content
    keys = np.arange(102, dtype=np.uint64)
    hashes = [f"h{i}" for i in range(101)] + ["h0"]
    groups = find_duplicates(keys, vecs, hashes, threshold=0.02)
    assert key_sets(groups) == [{0, 100, 101}]


def test_keep_is_most_pixels_then_largest_file_then_oldest():
    keys, vecs, _ = library(50, [3])  # family {0, 50, 51, 52}
    facts = facts_from_arrays([0, 50, 51, 52], pixels=[100, 400, 400, 400], sizes=[9, 5, 7, 7],
                              mtimes=[1.0, 1.0, 3.0, 2.0])
    group = find_duplicates(keys, vecs, threshold=0.02, facts=facts)[0]
    assert group.keep == 52  # 400 px beats 100; of the 400 px, 7 bytes beat 5; of those, mtime 2 < 3
    assert group.members[0].key == 52 and group.members[0].distance_to_keep == 0.0
    assert group.members[0].facts == FileFacts(400, 7, 2.0)
    assert {m.key for m in group.copies} == {0, 50, 51}


def test_facts_are_asked_only_for_group_members():
    keys, vecs, _ = library(500, [1])
    asked = []

    def facts(key: int) -> FileFacts:
        asked.append(key)
        return FileFacts(1, 1, 0.0)

    find_duplicates(keys, vecs, threshold=0.02, facts=facts)
    assert sorted(asked) == [0, 500]


def test_ratio_test_refuses_pairs_in_a_crowd():
    # 30 near-identical plain pictures: each is as close to all the others as to any one of them
    rng = np.random.default_rng(3)
    crowd = unit(rng.normal(size=DIM) + rng.normal(scale=0.02, size=(30, DIM)))
    keys = np.arange(30, dtype=np.uint64)
    assert find_duplicates(keys, crowd, threshold=0.05, ratio=None)
    assert find_duplicates(keys, crowd, threshold=0.05, ratio=0.5) == []


def test_min_size_and_empty_input():
    keys, vecs, _ = library(100, [1, 3])
    assert [len(g) for g in find_duplicates(keys, vecs, threshold=0.02, min_size=3)] == [4]
    assert find_duplicates(np.zeros(0, np.uint64), np.zeros((0, DIM), np.float32), threshold=0.1) == []


def test_hnsw_path_finds_the_same_groups(monkeypatch):
    keys, vecs, expected = library(600, [2, 1])
    monkeypatch.setattr(neighbour_graph, "EXACT_SEARCH_LIMIT", 100)  # force the graph search
    groups = find_duplicates(keys, vecs, threshold=0.02)
    assert sorted(map(sorted, key_sets(groups))) == sorted(map(sorted, expected))


def test_large_components_are_split_from_the_neighbour_graph(monkeypatch):
    monkeypatch.setattr(dups, "FULL_MATRIX_LIMIT", 2)
    keys, vecs, expected = library(100, [4])
    assert key_sets(find_duplicates(keys, vecs, threshold=0.02)) == expected


def test_bad_input_is_refused():
    keys, vecs, _ = library(10, [])
    with pytest.raises(ValueError):
        find_duplicates(keys, vecs[:5], threshold=0.1)
    with pytest.raises(ValueError):
        find_duplicates(keys, vecs, threshold=-1)
    with pytest.raises(ValueError):
        find_duplicates(np.zeros(10, np.uint64), vecs, threshold=0.1)


def test_pixel_count_reads_the_header_and_refuses_non_pictures(tmp_path):
    Image.new("RGB", (37, 21), (10, 20, 30)).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"not a picture")
    assert pixel_count(tmp_path / "a.png") == 37 * 21
    assert pixel_count(tmp_path / "b.jpg") is None
    assert pixel_count(tmp_path / "missing.png") is None
    facts = file_facts(tmp_path / "a.png")
    assert facts.pixels == 37 * 21 and facts.bytes == (tmp_path / "a.png").stat().st_size
