"""The vector file's key → slot table: the layout it reads is usearch's, the vectors it gives are those
``Index.get`` gives, a library written now has one, an older library is read without it and gets one on
its next write, and a damaged one is never trusted."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from fakes import indexed_scenes, write_scenes

from imgret.errors import LibraryError
from imgret.runtime import slot_file, vectors
from imgret.runtime.library import Library
from imgret.runtime.maintenance import check_library


def _file_with_holes(tmp_path, dtype: str):
    """A saved vector file after removals and re-adds (free slots, reused slots, a slot left free)."""
    rng = np.random.default_rng(7)
    index = vectors.build(np.arange(100, 160, dtype=np.uint64), rng.standard_normal((60, 16)).astype(np.float32),
                          "cosine", dtype)
    index.remove(np.array([103, 107, 111, 140, 141], dtype=np.uint64))
    index.add(np.array([103, 900], dtype=np.uint64), rng.standard_normal((2, 16)).astype(np.float32))
    path = str(tmp_path / f"vectors-{dtype}.usearch")
    saved = vectors.save(index, path)
    return index, path, saved


@pytest.mark.parametrize("dtype", vectors.VECTOR_DTYPES)
@pytest.mark.parametrize("pread", [True, False], ids=["pread", "seek-and-read"])
def test_the_slot_table_gives_exactly_the_vectors_usearch_gives(tmp_path, dtype, pread, monkeypatch):
    if not pread:  # Windows has no os.pread: rows are read by a seek and a read instead
        monkeypatch.delattr(os, "pread")
    index, path, saved = _file_with_holes(tmp_path, dtype)
    keys = np.asarray(index.keys, dtype=np.uint64)
    slots_path = str(tmp_path / slot_file.name_for(os.path.basename(path)))
    made = slot_file.write(path, slots_path)
    stored = slot_file.StoredVectors(path, slots_path, made, dim=16, dtype=dtype, count=saved.count)
    assert sorted(int(k) for k in stored.keys) == sorted(int(k) for k in keys)
    for key in keys:
        np.testing.assert_array_equal(stored.get(int(key)), vectors.stored_vectors(index, int(key)))
    for gone in (107, 111, 140, 141, 5, 2**63):
        assert stored.get(gone) is None
    free = slot_file.slot_keys(path) == slot_file.FREE_KEY
    assert free.sum() == 3  # removed slots stay in the file, marked free


def test_an_empty_vector_file_has_an_empty_table(tmp_path):
    path = str(tmp_path / "vectors-0.usearch")
    saved = vectors.save(vectors.new_index(16, "cosine"), path)
    made = slot_file.write(path, str(tmp_path / "vectors-0.slots.npy"))
    stored = slot_file.StoredVectors(path, str(tmp_path / "vectors-0.slots.npy"), made, dim=16, dtype="f32",
                                     count=saved.count)
    assert stored.get(1) is None


def test_a_file_that_is_not_usearchs_layout_is_refused(tmp_path):
    _, path, saved = _file_with_holes(tmp_path, "f32")
    data = bytearray(open(path, "rb").read())
    data[0] ^= 0x01  # another row count: the header is no longer where the rows end
    bad = tmp_path / "bad.usearch"
    bad.write_bytes(bytes(data))
    with pytest.raises(vectors.IndexDamaged):
        slot_file.slot_keys(str(bad))


def _hits(lib_path, photo, n=5):
    with Library.open(lib_path) as lib:
        return [(h.path, h.distance, tuple(c.path for c in h.copies)) for h in lib.query([photo], n)[0].hits]


@pytest.fixture
def library(tmp_path, fake_model):
    return indexed_scenes(tmp_path, fake_model, 30)


def _slots(lib_path):
    return sorted(lib_path.glob("vectors-*" + slot_file.SUFFIX))


def test_a_library_has_a_slot_table_and_queries_without_usearchs_key_table(library):
    lib_path, photos = library
    assert len(_slots(lib_path)) == 1
    with Library.open(lib_path) as lib:
        assert lib.vector_file.stored() is not None
        assert lib.query([photos / "scene004.png"], 3)[0].hits
        key = int(lib.catalogue.settled_keys()[0])
        assert lib.vector_file.searchable().settled.get(key) is None  # the view has no key table ...
        assert lib.catalogue.vector(key) is not None  # ... the slot table answers


def _forget_slots(lib_path):
    """Make the library look as older code left it: no slot table recorded or present."""
    for p in _slots(lib_path):
        p.unlink()
    db = sqlite3.connect(lib_path / "catalogue.sqlite")
    db.execute("DELETE FROM meta WHERE key IN ('index_slots_sha256', 'index_slots_size')")
    db.commit()
    db.close()


def test_an_older_library_is_read_through_usearch_and_gets_a_table_on_its_next_write(library):
    lib_path, photos = library
    photo = photos / "scene011.png"
    good = _hits(lib_path, photo)
    _forget_slots(lib_path)
    with Library.open(lib_path) as lib:
        assert lib.vector_file.stored() is None
    assert _hits(lib_path, photo) == good
    check_library(lib_path)  # sound: no table is no problem
    with Library.open_writable(lib_path) as lib:
        assert lib.index(photos).vector_file == "fresh"  # no rewrite of the vector file ...
    assert len(_slots(lib_path)) == 1  # ... but its table is written
    with Library.open(lib_path) as lib:
        assert lib.vector_file.stored() is not None
    assert _hits(lib_path, photo) == good


@pytest.mark.parametrize("how", ["bitflip", "truncated", "missing", "swapped"])
def test_a_damaged_slot_table_is_never_trusted_check_reports_it_and_index_repairs_it(library, how):
    lib_path, photos = library
    photo = photos / "scene017.png"
    good = _hits(lib_path, photo)
    table = _slots(lib_path)[0]
    data = bytearray(table.read_bytes())
    if how == "bitflip":
        data[-3] ^= 0x10  # a slot of the last key
    elif how == "truncated":
        data = data[: len(data) // 2]
    elif how == "swapped":  # well formed, wrong slots: caught by the checksum
        arr = np.load(table)
        arr[1] = arr[1][::-1].copy()
        np.save(table, arr)
        data = bytearray(table.read_bytes())
    if how == "missing":
        table.unlink()
    else:
        table.write_bytes(bytes(data))
    with Library.open(lib_path) as lib:
        assert lib.vector_file.stored() is None  # falls back to usearch's key table
    assert _hits(lib_path, photo) == good
    with pytest.raises(LibraryError, match="slot table") as found:
        check_library(lib_path)
    assert "imgret index" in str(found.value) and "damaged" in str(found.value)
    with Library.open_writable(lib_path) as lib:
        assert lib.index(photos).unchanged == 30
    check_library(lib_path)
    with Library.open(lib_path) as lib:
        assert lib.vector_file.stored() is not None
    assert _hits(lib_path, photo) == good


ONE_SHOT = """
import sys
from imgret.cli import cli
from imgret.cli.errors import run_cli
code = run_cli(cli, ["query", "--library", {lib!r}, "-N", "2", *{photos!r}])
print("LOADED", sorted(m for m in sys.modules if m in ("onnxruntime", "PIL", "usearch.compiled")), code)
"""


def _cold(lib_path, *photos):
    script = ONE_SHOT.format(lib=str(lib_path), photos=[str(p) for p in photos])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_cold_query_of_library_pictures_loads_neither_onnxruntime_nor_pillow_nor_usearch(library):
    lib_path, photos = library
    out = _cold(lib_path, photos / "scene003.png", photos / "scene020.png")
    assert "scene0" in out.split("LOADED")[0]
    assert out.split("LOADED")[1].split() == ["[]", "0"]  # the vector file read by imgret's own reader


def test_a_cold_query_of_many_library_pictures_opens_usearch_without_onnxruntime(library):
    lib_path, photos = library
    many = sorted(photos.glob("scene0*.png"))[:9]  # more searches than imgret's own reader is worth
    out = _cold(lib_path, *many)
    assert out.split("LOADED")[0].count("scene0") >= 9
    assert out.split("LOADED")[1].split() == ["['usearch.compiled']", "0"]


def test_a_cold_query_that_must_embed_loads_onnxruntime_before_usearch_and_answers(library, tmp_path):
    lib_path, photos = library
    outside = write_scenes(tmp_path / "q", 1, start=70)[0]
    out = _cold(lib_path, photos / "scene003.png", outside)  # a library picture first, then a new one
    assert out.count("scene0") >= 4
    assert "'onnxruntime'" in out.split("LOADED")[1] and out.rstrip().endswith("0")


def test_an_embedding_after_a_one_shot_search_is_refused_not_a_crash(library, tmp_path):
    lib_path, photos = library
    outside = write_scenes(tmp_path / "q", 1, start=70)[0]
    many = [str(p) for p in sorted(photos.glob("scene0*.png"))[:9]]  # enough searches to open usearch
    script = f"""
import sys
from imgret.errors import ModelError
from imgret.runtime.library import Library
with Library.open({str(lib_path)!r}, one_shot=True) as lib:
    lib.query({many!r}, 2)
    try:
        lib.query([{str(outside)!r}], 2)
    except ModelError as exc:
        print("refused:", exc)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("refused:"), (out.stdout, out.stderr)
    assert "onnxruntime cannot be loaded in this process" in out.stdout


def test_an_embedding_after_a_search_by_imgrets_own_reader_is_answered(library, tmp_path):
    """usearch never loaded, so onnxruntime may load after the search."""
    lib_path, photos = library
    outside = write_scenes(tmp_path / "q", 1, start=70)[0]
    script = f"""
import sys
from imgret.runtime.library import Library
with Library.open({str(lib_path)!r}, one_shot=True) as lib:
    first = lib.query([{str(photos / 'scene003.png')!r}], 2)
    second = lib.query([{str(outside)!r}], 2)
    print(len(first[0].hits), len(second[0].hits), "usearch.compiled" in sys.modules)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.split() == ["2", "2", "False"], (out.stdout, out.stderr)


@pytest.mark.parametrize("how", ["swapped", "unsorted", "truncated", "missing"])
def test_a_damaged_slot_table_never_gives_imgrets_own_reader_a_wrong_vector(library, how):
    """A one-shot query does not read the table whole: each slot it gives is confirmed against the key
    the vector file stores there, and a key it cannot find makes it check itself whole. Damaged, it
    is given up and the picture is embedded instead: the same answer."""
    lib_path, photos = library
    table = _slots(lib_path)[0]
    arr = np.load(table)
    with Library.open(lib_path) as lib:  # the picture of the smallest key: "unsorted" moves it away
        photo = lib.catalogue.paths([int(arr[0][0])])[int(arr[0][0])]
    good = _hits(lib_path, photo)
    if how == "swapped":  # well formed and sorted, every slot wrong
        arr[1] = arr[1][::-1].copy()
    elif how == "unsorted":  # two keys trade places: a binary search goes astray
        arr[0][[0, -1]] = arr[0][[-1, 0]]
    size = table.stat().st_size
    np.save(table, arr)
    assert table.stat().st_size == size
    if how == "truncated":
        table.write_bytes(table.read_bytes()[: size // 2])
    elif how == "missing":
        table.unlink()
    with Library.open(lib_path, one_shot=True) as lib:
        hits = [(h.path, h.distance, tuple(c.path for c in h.copies)) for h in lib.query([photo], 5)[0].hits]
        assert type(lib.vector_file.searchable().settled).__name__ == "GraphFile"
        assert lib.vector_file.stored() is None  # given up
    assert hits == good
