"""Library API: catalogue round trips, the vector file (checked, never searched when damaged), locking."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from fakes import scene, write_scenes

from imgret.errors import LibraryError, LibraryLockedError, ModelError
from imgret.runtime import vectors
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.library import Library, library_info


def vector_file_of(libdir) -> Path:
    """The vector file the catalogue names."""
    with Library.open(libdir) as lib:
        return Path(lib.vector_file.path(lib.vector_file.record()[0]))


def test_catalogue_round_trips_any_path_bytes_and_vectors(tmp_path):
    cat = Catalogue(str(tmp_path / "c.sqlite"))
    odd = os.fsdecode(b"/photos/caf\xe9 \xff\n\t\x1b[31m.jpg")
    vec = np.arange(8, dtype=np.float32)
    key = cat.put_ok(odd, 10, 20, "ab" * 32, vec)
    cat.commit()
    row = cat.lookup(odd)
    assert row.key == key and row.path == odd and os.fsencode(row.path) == os.fsencode(odd)
    assert np.array_equal(cat.vector(key), vec)
    with pytest.raises(ValueError):
        cat.put_ok("/x.jpg", 1, 1, "cd" * 32, np.array([np.nan], dtype=np.float32))


def test_api_add_query_remove(tmp_path, fake_model):
    photos = tmp_path / "p"
    paths = write_scenes(photos, 6)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        report = lib.add(paths)
        assert report.added == 6 and len(lib) == 6
        res = lib.query([np.asarray(scene(3))], 1)[0]
        assert os.path.basename(res.hits[0].path) == "scene003.png"
        assert lib.remove([paths[3]]) == 1
        res = lib.query([np.asarray(scene(3))], 6)[0]
        assert len(res.hits) == 5
        assert all("scene003" not in h.path for h in res.hits)


def _indexed(tmp_path, fake_model):
    photos = tmp_path / "p"
    write_scenes(photos, 10)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    return photos, tmp_path / "lib"


@pytest.mark.parametrize("damage", ["missing", "truncated", "zeroed", "bitflip"])
def test_damaged_vector_file_is_never_searched_and_the_next_run_repairs_it(tmp_path, fake_model, damage):
    photos, libdir = _indexed(tmp_path, fake_model)
    with Library.open(libdir) as lib:
        good = [h.path for h in lib.query([str(photos / "scene001.png")], 9)[0].hits]
    index_file = vector_file_of(libdir)
    data = bytearray(index_file.read_bytes())
    if damage == "missing":
        index_file.unlink()
    elif damage == "truncated":
        index_file.write_bytes(data[: len(data) // 2])
    elif damage == "zeroed":
        index_file.write_bytes(bytes(len(data)))
    else:
        data[len(data) // 2] ^= 0x40
        index_file.write_bytes(bytes(data))
    assert library_info(libdir)["index_fresh"] is False  # info checks the real file ...
    with Library.open(libdir) as lib, pytest.raises(LibraryError, match="vector file .* damaged"):
        lib.query([str(photos / "scene001.png")], 9)  # ... and a query refuses to search it
    with Library.open_writable(libdir) as lib:
        report = lib.index(photos)
        assert report.vectors_lost == 10 and report.updated == 10 and report.vector_file == "rebuilt"
    with Library.open(libdir) as lib:
        assert [h.path for h in lib.query([str(photos / "scene001.png")], 9)[0].hits] == good
    assert library_info(libdir)["index_fresh"] is True


def test_verified_load_rejects_mismatch(tmp_path):
    idx = vectors.build(np.arange(3, dtype=np.uint64), np.eye(3, dtype=np.float32), "cosine")
    saved = vectors.save(idx, str(tmp_path / "v.usearch"))
    assert len(vectors.open_view(str(tmp_path / "v.usearch"), saved, 3)) == 3
    wrong = vectors.SavedIndex(4, saved.sha256, saved.size, saved.sample)
    with pytest.raises(vectors.IndexDamaged):
        vectors.open_view(str(tmp_path / "v.usearch"), wrong, 3)


def test_second_writer_is_refused_at_once_and_readers_still_work(tmp_path, fake_model):
    photos, libdir = _indexed(tmp_path, fake_model)
    with Library.open_writable(libdir):
        with pytest.raises(LibraryLockedError, match="locked"):
            Library.open_writable(libdir)
        with Library.open(libdir) as reader:
            assert len(reader.query([str(photos / "scene000.png")], 3)[0].hits) == 3


def test_damaged_catalogue_gives_a_clear_error(tmp_path, fake_model):
    _, libdir = _indexed(tmp_path, fake_model)
    for extra in ("-wal", "-shm"):
        p = libdir / ("catalogue.sqlite" + extra)
        if p.exists():
            p.unlink()
    (libdir / "catalogue.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(LibraryError, match="damaged"):
        Library.open(libdir)


def test_exact_and_hnsw_search_agree_on_small_data(monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 16)).astype(np.float32)
    idx = vectors.build(np.arange(300, dtype=np.uint64), data, "cosine")
    exact = vectors.search(idx, data[:20], 5)
    monkeypatch.setattr(vectors, "EXACT_SEARCH_LIMIT", 10)
    approx = vectors.search(idx, data[:20], 5)
    # HNSW is approximate and its multi-threaded build is not deterministic (30 builds here: overlap
    # 0.98 at worst, and a query now and then not its own first hit): ask for nearly all of the top 5.
    overlap = []
    for q, ((k1, _), (k2, _)) in enumerate(zip(exact, approx, strict=True)):
        assert int(k1[0]) == q
        overlap.append(len(set(map(int, k1)) & set(map(int, k2))) / 5)
    assert np.mean(overlap) >= 0.9


def test_model_files_must_be_onnx_and_sane(tmp_path):
    from fakes import make_thumbnail_model

    from imgret.runtime.encoder import Encoder

    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    with pytest.raises(ModelError, match="only .onnx"):
        Encoder(bad)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError):
        Encoder(junk)
    with pytest.raises(ModelError, match="non-finite or zero"):
        Encoder(make_thumbnail_model(tmp_path / "nan.onnx", nan=True))


def test_vector_file_is_updated_and_matches_a_full_rebuild(tmp_path, fake_model):
    photos, libdir = _indexed(tmp_path, fake_model)
    (photos / "scene001.png").unlink()
    scene(50).save(photos / "scene002.png")  # same key, new vector
    os.utime(photos / "scene002.png", ns=(5, 5))
    scene(51).save(photos / "new.png")
    queries = [str(p) for p in sorted(photos.iterdir())]
    with Library.open_writable(libdir) as lib:
        assert lib.index(photos).vector_file == "updated"
        incremental = [[h.path for h in r.hits] for r in lib.query(queries, 10, include_self=True)]
        assert len(lib.vector_file.searchable().settled) == len(lib) == 10
    with Library.open_writable(tmp_path / "clean", model=fake_model) as lib:
        lib.index(photos)
        full = [[h.path for h in r.hits] for r in lib.query(queries, 10, include_self=True)]
    assert incremental == full
    assert all(os.path.basename(r[0]) == os.path.basename(q) for r, q in zip(incremental, queries))


def test_the_readme_python_api_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## Python API.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    write_scenes(tmp_path / "photos", 4)
    for name, seed in (("a.jpg", 7), ("b.png", 8), ("new.jpg", 9), ("holiday.jpg", 2), ("photos/old.jpg", 10)):
        scene(seed).save(tmp_path / name)
    exec(compile(code, "README.md", "exec"), {})
    with Library.open(tmp_path / "my-library") as lib:
        assert len(lib) == 5 and lib.query([str(tmp_path / "holiday.jpg")], 1)[0].hits[0].path.endswith("scene002.png")
