"""The library's storage: what a run with nothing changed touches, the format-1 upgrade, a library that
keeps its own model, and a library that moves with its pictures."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3

import numpy as np
import pytest
from fakes import make_thumbnail_model, scene, write_scenes
from harness import child_env, run_imgret
from v1_library import write_v1_library

from imgret.runtime import vectors
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.library import Library, library_info


class CountingVectors:
    """Stands in for :mod:`imgret.runtime.vectors` as a vector file's ``io``: counts each file access."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        real = getattr(vectors, name)
        if not callable(real) or name not in {"verify", "open_view", "load_for_update", "save", "check_sample"}:
            return real

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return counted


def _queries(lib, photos, n=5):
    return [[h.path for h in r.hits] for r in lib.query(sorted(str(p) for p in photos.glob("scene*.png")), n)]


def test_a_run_with_nothing_changed_neither_reads_nor_writes_the_vector_file(tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 12)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        assert lib.index(photos).vector_file == "rebuilt"
    before = library_info(tmp_path / "lib")
    name = sorted(p.name for p in (tmp_path / "lib").glob("vectors-*.usearch"))
    stamp = [(tmp_path / "lib" / n).stat().st_mtime_ns for n in name]
    with Library.open_writable(tmp_path / "lib") as lib:
        io = CountingVectors()
        lib.vector_file.io = io
        report = lib.index(photos)
        gen = lib.catalogue.get_meta("catalogue_generation")
    assert report.unchanged == 12 and report.vector_file == "fresh"
    assert io.calls == {"check_sample": 1}  # the header and tail's checksum, nothing more
    assert sorted(p.name for p in (tmp_path / "lib").glob("vectors-*.usearch")) == name
    assert [(tmp_path / "lib" / n).stat().st_mtime_ns for n in name] == stamp
    after = library_info(tmp_path / "lib")
    assert after["updated"] == before["updated"] and after["index_fresh"]
    with Library.open(tmp_path / "lib") as lib:
        assert lib.catalogue.get_meta("catalogue_generation") == gen


def test_a_few_new_pictures_stay_pending_beside_a_large_vector_file_and_are_found(tmp_path, fake_model, monkeypatch):
    from imgret.runtime import vector_file

    photos = tmp_path / "photos"
    write_scenes(photos, 60)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    monkeypatch.setattr(vector_file, "PENDING_SHARE", 10)  # up to 6 changes stay pending
    (photos / "scene003.png").unlink()
    write_scenes(photos, 1, start=70)
    with Library.open_writable(tmp_path / "lib") as lib:
        io = CountingVectors()
        lib.vector_file.io = io
        report = lib.index(photos)
        assert report.added == 1 and report.removed == 1 and report.vector_file == "pending"
        assert "save" not in io.calls and "load_for_update" not in io.calls
    with Library.open(tmp_path / "lib") as lib:
        hits = lib.query([np.asarray(scene(70))], 60)[0].hits
        assert os.path.basename(hits[0].path) == "scene070.png"  # the pending one is searched
        assert len(hits) == 60 and not any("scene003" in h.path for h in hits)  # the removed one is not
    with Library.open_writable(tmp_path / "clean", model=fake_model) as lib:
        lib.index(photos)
        clean = lib.query([np.asarray(scene(70))], 60)[0].hits
    assert [h.path for h in hits] == [h.path for h in clean]


def _v1(tmp_path, fake_model):
    photos = tmp_path / "photos"
    pics = write_scenes(photos, 10)
    (photos / "notes.png").write_bytes(b"not a picture")
    write_v1_library(tmp_path / "lib", pics, fake_model, skipped=[photos / "notes.png"])
    with Library.open_writable(tmp_path / "v2", model=fake_model) as lib:
        lib.index(photos)
        want = _queries(lib, photos)
    return photos, tmp_path / "lib", want


def test_a_format_1_library_is_read_as_it_is(tmp_path, fake_model):
    photos, libdir, want = _v1(tmp_path, fake_model)
    raw = (libdir / "catalogue.sqlite").read_bytes()
    with Library.open(libdir) as lib:
        assert lib.catalogue.format == 1 and len(lib) == 10
        assert _queries(lib, photos) == want
    assert library_info(libdir)["format"] == 1 and library_info(libdir)["skipped"] == 1
    assert (libdir / "catalogue.sqlite").read_bytes() == raw  # reading changed nothing


def test_a_format_1_library_is_upgraded_in_place_without_reading_a_picture(tmp_path, fake_model):
    photos, libdir, want = _v1(tmp_path, fake_model)
    with Library.open_writable(libdir) as lib:
        report = lib.index(photos)
        assert lib.catalogue.format == 2
    assert (report.added, report.updated, report.unchanged, report.previously_skipped) == (0, 0, 10, 1)
    assert not (libdir / "vectors.usearch").exists() and len(list(libdir.glob("vectors-*.usearch"))) == 1
    info = library_info(libdir)
    assert info["format"] == 2 and info["folders"] == [str(photos)] and info["model_file"] == "model.onnx"
    with Library.open(libdir) as lib:
        assert _queries(lib, photos) == want
    db = sqlite3.connect(libdir / "catalogue.sqlite")
    assert {type(s) for (s,) in db.execute("SELECT sha256 FROM files WHERE sha256 IS NOT NULL")} == {bytes}
    assert db.execute("SELECT count(*) FROM pending").fetchone()[0] == 0
    db.close()


def test_a_kill_during_the_upgrade_leaves_a_working_format_1_library(tmp_path, fake_model):
    photos, libdir, want = _v1(tmp_path, fake_model)
    killed = run_imgret("index", photos, "--library", libdir, env=child_env(IMGRET_FAULT_POINT="during-upgrade"))
    assert killed.code == -signal.SIGKILL
    with Library.open(libdir) as lib:
        assert lib.catalogue.format == 1 and _queries(lib, photos) == want
    done = run_imgret("index", photos, "--library", libdir)
    assert done.code == 0 and "0 added, 0 updated, 0 removed, 10 unchanged" in done.stderr, done.stderr
    with Library.open(libdir) as lib:
        assert lib.catalogue.format == 2 and _queries(lib, photos) == want


def test_a_library_keeps_a_verified_copy_of_a_custom_model(tmp_path, imgret):
    model = make_thumbnail_model(tmp_path / "mine.onnx", model_id="mine")
    photos = tmp_path / "photos"
    write_scenes(photos, 6)
    lib = tmp_path / "lib"
    assert imgret("index", photos, "--library", lib, "--model", model).code == 0
    info = imgret("info", "--library", lib).stdout
    fingerprint = library_info(lib)["model_fingerprint"]
    assert fingerprint in info and "mine" in info
    good = imgret("query", photos / "scene001.png", "--library", lib).stdout
    moved = tmp_path / "elsewhere.onnx"
    shutil.move(model, moved)
    assert imgret("query", photos / "scene001.png", "--library", lib).stdout == good
    r = imgret("index", photos, "--library", lib, "--model", moved)  # the same model, from its new place
    assert r.code == 0 and "6 unchanged" in r.stderr
    (lib / "model.onnx").write_bytes((lib / "model.onnx").read_bytes()[:-1] + b"x")  # a damaged copy
    r = imgret("query", photos / "scene001.png", "--library", lib)
    assert r.code == 1 and "does not match the fingerprint" in r.stderr  # refused, never loaded
    assert imgret("check", "--library", lib).code == 1


def test_a_library_moves_with_its_pictures_without_reading_them(tmp_path, imgret, fake_model):
    photos, lib = tmp_path / "laptop" / "photos", tmp_path / "laptop" / "lib"
    write_scenes(photos, 8)
    assert imgret("index", photos, "--library", lib, "--model", fake_model).code == 0
    good = imgret("query", photos / "scene002.png", "--library", lib, "-N", "7", "--json").stdout
    device = tmp_path / "device"
    device.mkdir()
    shutil.move(photos, device / "pics")
    shutil.move(lib, device / "lib")
    new_photos, new_lib = device / "pics", device / "lib"
    for p in new_photos.iterdir():  # same size and mtime, other bytes: any read would change answers
        st = p.stat()
        p.write_bytes(b"\0" * st.st_size)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = imgret("relocate", photos, new_photos, "--library", new_lib)
    assert r.code == 0, r.stderr
    got = imgret("query", new_photos / "scene002.png", "--library", new_lib, "-N", "7", "--json").stdout
    assert got == good.replace(str(photos), str(new_photos))
    r = imgret("index", new_photos, "--library", new_lib)
    assert r.code == 0 and "0 added, 0 updated, 0 removed, 8 unchanged" in r.stderr


def test_relocate_refuses_a_folder_the_library_does_not_hold(tmp_path, imgret, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 2)
    imgret("index", photos, "--library", tmp_path / "lib", "--model", fake_model)
    r = imgret("relocate", tmp_path / "nowhere", photos, "--library", tmp_path / "lib")
    assert r.code == 1 and "no pictures under" in r.stderr


def test_nested_and_explicit_files_share_one_stored_root(tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos / "a", 3)
    write_scenes(photos / "b", 2, start=10)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos / "a")
        lib.add([photos / "b" / "scene010.png"])
        assert lib.index(photos).added == 1  # a/ and b/scene010 are known: only b/scene011 is new
        cat: Catalogue = lib.catalogue
        assert cat.root_folders() == [str(photos)]
        stored = {bytes(p) for (p,) in cat.db.execute("SELECT path FROM files")}
    assert stored == {b"a/scene000.png", b"a/scene001.png", b"a/scene002.png", b"b/scene010.png", b"b/scene011.png"}


def test_disk_use_per_picture_is_small(tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 300)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    db = sqlite3.connect(tmp_path / "lib" / "catalogue.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    total = sum(p.stat().st_size for p in (tmp_path / "lib").iterdir() if p.name != "model.onnx")
    per_picture = total / 300  # 48-d fake vectors: 192 bytes each
    assert per_picture < 192 + 500, per_picture


@pytest.mark.parametrize("dim", [16])
def test_vector_file_search_merges_pending_and_skips_stale_keys(tmp_path, dim):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(50, dim)).astype(np.float32)
    settled = vectors.build(np.arange(50, dtype=np.uint64), data, "cosine")
    newer = rng.normal(size=(1, dim)).astype(np.float32)
    overlay = vectors.build(np.array([7], dtype=np.uint64), newer, "cosine")
    s = vectors.Searchable(settled, overlay, {7}, dead=1)
    keys, _ = vectors.search(s, newer, 3)[0]
    assert int(keys[0]) == 7 and len(keys) == 3 and len(set(map(int, keys))) == 3
    keys, _ = vectors.search(s, data[7:8], 50)[0]
    assert list(map(int, keys)).count(7) == 1  # the old vector of key 7 is never returned


def test_roots_and_relocation_keep_any_path_bytes(tmp_path):
    cat = Catalogue(str(tmp_path / "c.sqlite"))
    odd = os.fsdecode(b"/old/caf\xe9/x\xff\n.jpg")
    key = cat.put_ok(odd, 1, 2, "ab" * 32, np.ones(4, np.float32))
    cat.add_root(os.fsdecode(b"/old/caf\xe9"))
    cat.add_root("/old")  # folds the inner root into the outer one
    assert cat.root_folders() == ["/old"]
    assert cat.relocate("/old", os.fsdecode(b"/n\xeaw")) == 1
    cat.commit()
    row = cat.lookup(os.fsdecode(b"/n\xeaw/caf\xe9/x\xff\n.jpg"))
    assert row is not None and row.key == key and row.pending
    assert {type(p) for (p,) in cat.db.execute("SELECT path FROM files")} == {bytes}


def test_a_vector_index_made_before_the_model_loads_does_not_crash_the_process():
    """usearch 2.26 loaded before onnxruntime 1.32 makes the onnxruntime import segfault."""
    import subprocess
    import sys

    code = ("from imgret.runtime import vectors; vectors.new_index(4, 'cosine'); "
            "import onnxruntime; print('alive')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "alive", out.stderr
