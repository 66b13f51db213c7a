"""Damaged library files, through the CLI.

The index file is derived: any damage is detected by its checksum, never searched, and rebuilt by the
next ``index``. The catalogue is the source of truth: damage to it gives one clear line naming the
recovery (move the library aside and index again), which is then shown to work.
"""

from __future__ import annotations

import random
import shutil

import pytest
from fakes import write_scenes
from harness import meta, run_imgret

from imgret.runtime import vectors
from imgret.runtime.catalogue import RECOVERY
from imgret.runtime.library import INDEX_FILE


@pytest.fixture
def library(imgret, tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 40)
    lib = tmp_path / "lib"
    r = imgret("index", photos, "--library", lib, "--model", fake_model)
    assert r.code == 0, r.stderr
    return photos, lib


def _index_file_is_sound(lib) -> bool:
    m = meta(lib)
    saved = vectors.SavedIndex(int(m["index_count"]), m["index_sha256"], int(m["index_size"]))
    try:
        vectors.load_verified(str(lib / INDEX_FILE), saved)
    except vectors.IndexDamaged:
        return False
    return m["index_generation"] == m["catalogue_generation"]


def _damage(data: bytes, how: str) -> bytes:
    d = bytearray(data)
    if how == "truncated":
        return bytes(d[: len(d) // 2])
    if how == "zeroed":
        return bytes(len(d))
    if how == "bitflip":
        d[len(d) // 3] ^= 0x08
        return bytes(d)
    if how == "appended":
        return bytes(d) + b"\0" * 64
    if how == "garbage":
        return b"garbage" * 100
    if how == "empty":
        return b""
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "zeroed", "bitflip", "appended", "empty", "missing"])
def test_damaged_index_file_is_detected_and_rebuilt(imgret, library, how):
    photos, lib = library
    query = ["query", photos / "scene007.png", "--library", lib, "-N", "10"]
    good = imgret(*query).stdout
    index_file = lib / INDEX_FILE
    if how == "missing":
        index_file.unlink()
    else:
        index_file.write_bytes(_damage(index_file.read_bytes(), how))
    assert not _index_file_is_sound(lib)
    r = imgret(*query)
    assert r.code == 0 and r.stdout == good  # answered from the catalogue, not the damaged file
    r = imgret("index", photos, "--library", lib)
    assert r.code == 0 and "0 added, 0 updated, 0 removed, 40 unchanged" in r.stderr
    assert _index_file_is_sound(lib)
    assert imgret(*query).stdout == good


def test_temporary_file_of_a_killed_save_is_cleaned_up(imgret, library):
    photos, lib = library
    (lib / ".vectors-abc123.tmp").write_bytes(b"half a file")
    assert imgret("index", photos, "--library", lib).code == 0
    assert not (lib / ".vectors-abc123.tmp").exists()


def _page_damage(data: bytes, how: str) -> bytes:
    d = bytearray(data)
    rng = random.Random(how)
    if how == "header":
        d[:100] = bytes(100)
    elif how == "second-page":
        d[4096:8192] = rng.randbytes(4096)
    elif how == "last-page":
        d[-4096:] = rng.randbytes(4096)
    else:
        return _damage(data, how)
    return bytes(d)


@pytest.mark.parametrize("how", ["garbage", "truncated", "header", "second-page", "last-page"])
def test_damaged_catalogue_gives_one_clear_line_and_the_recovery_works(imgret, library, fake_model, how):
    photos, lib = library
    cat = lib / "catalogue.sqlite"
    for extra in ("-wal", "-shm"):
        (lib / ("catalogue.sqlite" + extra)).unlink(missing_ok=True)
    cat.write_bytes(_page_damage(cat.read_bytes(), how))
    for args in (["query", photos / "scene001.png"], ["info"], ["index", photos]):
        r = run_imgret(*args, "--library", lib)
        assert r.code == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "damaged" in lines[0] and RECOVERY in lines[0], lines
    # The documented recovery: move the library aside and index again.
    shutil.move(lib, lib.with_name("lib.damaged"))
    r = imgret("index", photos, "--library", lib, "--model", fake_model)
    assert r.code == 0 and "40 added" in r.stderr
    q = imgret("query", photos / "scene001.png", "--library", lib, "-N", "3", "--paths")
    assert q.code == 0 and len(q.stdout.split()) == 3


def test_garbage_write_ahead_log_is_ignored(imgret, library):
    photos, lib = library
    before = imgret("query", photos / "scene002.png", "--library", lib).stdout
    (lib / "catalogue.sqlite-wal").write_bytes(b"\x37\x7f\x06\x82" + b"junk" * 1000)
    r = imgret("query", photos / "scene002.png", "--library", lib)
    assert r.code == 0 and r.stdout == before
