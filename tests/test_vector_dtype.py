"""The library's vector type (``imgret index --dtype``): chosen when the library is made, recorded in
the catalogue, used by the vector file and by search, shown by ``info``, checked by ``check``."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from fakes import scene, write_scenes

from imgret.errors import LibraryError
from imgret.runtime import vectors
from imgret.runtime.library import Library, library_info

SMALL = ("f16", "i8")


def _library(tmp_path, fake_model, dtype: str | None, count: int = 20):
    photos = tmp_path / "p"
    paths = write_scenes(photos, count)
    lib_dir = tmp_path / f"lib-{dtype}"
    with Library.open_writable(lib_dir, model=fake_model, dtype=dtype) as lib:
        lib.index(photos)
    return paths, lib_dir


def _file_dtype(lib_dir) -> str:
    with Library.open(lib_dir) as lib:
        return vectors.index_dtype(lib.vector_file.searchable().settled)


@pytest.mark.parametrize("dtype", SMALL)
def test_a_small_type_library_finds_each_picture_itself(tmp_path, fake_model, dtype):
    paths, lib_dir = _library(tmp_path, fake_model, dtype)
    assert _file_dtype(lib_dir) == dtype
    with Library.open(lib_dir) as lib:
        # By stored vector (read back from the f16/i8 file as float32) and by embedding the picture.
        stored = lib.query(paths, 1, include_self=True, fold=False)
        embedded = lib.query([np.asarray(scene(i)) for i in range(len(paths))], 1, fold=False)
    for i, (a, b) in enumerate(zip(stored, embedded)):
        assert a.hits[0].path == str(paths[i]) and a.hits[0].distance < 0.01
        assert b.hits[0].path == str(paths[i])


@pytest.mark.parametrize("dtype", SMALL)
def test_stored_vectors_read_back_as_float32_close_to_the_originals(dtype):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 24)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = vectors.build(np.arange(50, dtype=np.uint64), vecs, "cosine", dtype)
    back = vectors.stored_vectors(index, np.arange(50, dtype=np.uint64))
    assert back.dtype == np.float32
    assert np.abs(back - vecs).max() < (0.002 if dtype == "f16" else 0.01)  # int8 codes would be ~100x off


@pytest.mark.parametrize("dtype", SMALL)
def test_hnsw_search_over_a_small_type_finds_each_vector_itself(dtype):
    n = vectors.EXACT_SEARCH_LIMIT + 500  # above the crossover: the HNSW path
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((n, 32)).astype(np.float32)
    keys = np.arange(n, dtype=np.uint64)
    index = vectors.build(keys, vecs, "cosine", dtype)
    found = vectors.search(index, vecs[:200], 1)
    # HNSW is approximate and its threaded build is not deterministic: on these random vectors a run
    # finds 0.985-1.0 of them itself. A type read or scaled wrongly finds almost none, so 0.95 still
    # tells the two apart without failing on an unlucky graph.
    assert np.mean([int(k[0]) == i for i, (k, _) in enumerate(found)]) > 0.95


def test_smaller_types_make_a_smaller_file_and_info_shows_the_type(tmp_path, fake_model):
    sizes = {}
    for dtype in (None, "f16", "i8"):
        _, lib_dir = _library(tmp_path / str(dtype), fake_model, dtype)
        info = library_info(lib_dir)
        assert info["vector_dtype"] == (dtype or "f32")
        sizes[info["vector_dtype"]] = info["index_bytes"]
    assert sizes["f32"] > sizes["f16"] > sizes["i8"] > 0


def test_another_type_for_an_existing_library_is_refused_until_rebuild(tmp_path, fake_model):
    paths, lib_dir = _library(tmp_path, fake_model, "f16")
    with pytest.raises(LibraryError, match=r"stores its vectors as f16.*--rebuild --dtype f32"):
        Library.open_writable(lib_dir, dtype="f32")
    with Library.open_writable(lib_dir, dtype="f16") as lib:  # the same type, or none, is fine
        assert lib.index(tmp_path / "p").unchanged == len(paths)
    with Library.open_writable(lib_dir) as lib:
        assert lib.vector_file.dtype == "f16"
    with Library.open_writable(lib_dir, dtype="f32", rebuild=True) as lib:
        lib.index(tmp_path / "p")
    assert library_info(lib_dir)["vector_dtype"] == "f32" and _file_dtype(lib_dir) == "f32"
    with Library.open(lib_dir) as lib:
        assert lib.query([paths[2]], 1, include_self=True)[0].hits[0].path == str(paths[2])


def test_i8_is_refused_for_a_model_that_is_not_cosine(tmp_path):
    from fakes import make_thumbnail_model

    model = make_thumbnail_model(tmp_path / "l2.onnx", metric="l2")
    with pytest.raises(LibraryError, match="i8 keeps only the direction"):
        Library.open_writable(tmp_path / "lib", model=model, dtype="i8")


def test_cli_index_dtype_info_and_check(imgret, photos, fake_model, tmp_path):
    lib = tmp_path / "cli-lib"
    assert imgret("index", photos, "--library", lib, "--model", fake_model, "--dtype", "i8").code == 0
    info = imgret("info", "--library", lib, "--json")
    assert json.loads(info.stdout)["vector_dtype"] == "i8"
    assert "i8 vectors" in imgret("info", "--library", lib).stdout
    assert imgret("check", "--library", lib).code == 0
    refused = imgret("index", photos, "--library", lib, "--dtype", "f16")
    assert refused.code == 1 and "--rebuild --dtype f16" in refused.stderr
    assert imgret("index", photos, "--library", lib, "--dtype", "f17").code == 2  # not a type: usage error


def test_check_finds_a_file_of_another_type_than_the_catalogue_records(imgret, photos, fake_model, tmp_path):
    lib = tmp_path / "cli-lib"
    assert imgret("index", photos, "--library", lib, "--model", fake_model, "--dtype", "f16").code == 0
    with sqlite3.connect(lib / "catalogue.sqlite") as db:
        db.execute("UPDATE meta SET value = 'f32' WHERE key = 'vector_dtype'")
    checked = imgret("check", "--library", lib)
    assert checked.code == 1 and "stores f16 vectors, the catalogue records f32" in checked.stderr


@pytest.mark.parametrize("dtype", SMALL)
def test_an_updated_vector_file_keeps_the_library_type(tmp_path, fake_model, dtype):
    paths, lib_dir = _library(tmp_path, fake_model, dtype)
    added = write_scenes(tmp_path / "p", 3, start=len(paths))
    with Library.open_writable(lib_dir) as lib:
        lib.index(tmp_path / "p")
        assert lib.catalogue.pending_count() == 0  # the file was rewritten with them ("updated")
    assert _file_dtype(lib_dir) == dtype
    with Library.open(lib_dir) as lib:
        for path in added:
            assert lib.query([path], 1, include_self=True, fold=False)[0].hits[0].path == str(path)
