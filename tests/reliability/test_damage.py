"""Damaged library files, through the CLI.

The vector file holds the settled vectors once: damage is detected by its size and checksums before a
query maps it, and is never searched (one clear line); the next ``index`` re-reads the pictures whose
vectors it held. ``imgret check`` finds any damage anywhere. The catalogue is the source of truth:
damage to it gives one clear line naming the recovery (move the library aside and index again) as soon
as anything touches it; a reader checks only its header, so damage elsewhere either fails the query the
same way or, untouched, leaves its answer as it was.
"""

from __future__ import annotations

import random
import shutil
import sqlite3

import pytest
from fakes import write_scenes
from harness import meta, run_imgret, vector_file

from imgret.runtime import vectors
from imgret.runtime.catalogue import RECOVERY


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, fake_model):
    """40 pictures and a library of them, built once per module; the tests only read the pictures."""
    from imgret.cli import cli
    from imgret.cli.errors import run_cli

    base = tmp_path_factory.mktemp("damage")
    photos = base / "photos"
    write_scenes(photos, 40)
    assert run_cli(cli, ["index", str(photos), "--library", str(base / "lib"), "--model", str(fake_model),
                         "--no-progress"]) == 0
    return photos, base / "lib"


@pytest.fixture
def library(indexed, tmp_path):
    """The shared pictures and a fresh copy of their library (its rows name the pictures by absolute
    path, so the copy is the same library)."""
    photos, pristine = indexed
    lib = tmp_path / "lib"
    shutil.copytree(pristine, lib)
    return photos, lib


def _index_file_is_sound(lib) -> bool:
    m = meta(lib)
    if "index_file" not in m:
        return False
    saved = vectors.SavedIndex(int(m["index_count"]), m["index_sha256"], int(m["index_size"]), m["index_sample"])
    try:
        vectors.verify(str(vector_file(lib, m)), saved, full=True)
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
def test_damaged_vector_file_is_never_searched_and_the_next_index_repairs_it(imgret, library, how):
    photos, lib = library
    query = ["query", photos / "scene007.png", "--library", lib, "-N", "10"]
    good = imgret(*query).stdout
    index_file = vector_file(lib)
    if how == "missing":
        index_file.unlink()
    else:
        index_file.write_bytes(_damage(index_file.read_bytes(), how))
    assert not _index_file_is_sound(lib)
    r = run_imgret(*query)
    assert r.code == 1 and r.stdout == ""  # never answered from a damaged file
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "damaged" in lines[0] and "imgret index" in lines[0], lines
    c = run_imgret("check", "--library", lib)
    assert c.code == 1 and "vector file" in c.stderr
    r = imgret("index", photos, "--library", lib)
    assert r.code == 0 and "0 added, 40 updated, 0 removed, 0 unchanged" in r.stderr, r.stderr
    assert _index_file_is_sound(lib)
    assert imgret(*query).stdout == good
    assert run_imgret("check", "--library", lib).code == 0


def test_damage_in_the_middle_of_a_large_vector_file_is_found_by_check_and_after_an_unclean_exit(
        imgret, library, monkeypatch):
    """Readers check a large file's size, head and tail only; `check` and a writer after an unclean
    shutdown check it whole."""
    photos, lib = library
    index_file = vector_file(lib)
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0x08
    index_file.write_bytes(bytes(data))
    c = run_imgret("check", "--library", lib)
    assert c.code == 1 and "vector file" in c.stderr
    db = sqlite3.connect(lib / "catalogue.sqlite")
    db.execute("UPDATE meta SET value = 'open' WHERE key = 'writer'")  # as a killed writer leaves it
    db.commit()
    db.close()
    r = imgret("index", photos, "--library", lib)
    assert r.code == 0 and "40 updated" in r.stderr
    assert _index_file_is_sound(lib)


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
    before = {}
    for args in (["query", photos / "scene001.png"], ["info"]):
        before[args[0]] = run_imgret(*args, "--library", lib).stdout
    cat.write_bytes(_page_damage(cat.read_bytes(), how))
    for args in (["query", photos / "scene001.png"], ["info"], ["index", photos], ["check"]):
        r = run_imgret(*args, "--library", lib)
        assert "Traceback" not in r.stderr
        if r.code == 0 and args[0] in before:  # a reader checks the header only: damage it did not
            assert r.stdout == before[args[0]]  # touch must have left its answer exactly as it was
            continue
        assert r.code == 1, (args, r.stderr)
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


def _large_file_library(imgret, photos, tmp_path, monkeypatch):
    """A library whose vector file readers and writers check only 256 bytes at each end, never the
    whole: the 40-picture file then behaves as a large one does (its middle is read only by `check`)."""
    monkeypatch.setattr(vectors, "SAMPLE_BYTES", 256)
    monkeypatch.setattr(vectors, "FULL_CHECK_BYTES", 0)
    lib = tmp_path / "large"
    assert imgret("index", photos, "--library", lib).code == 0
    return lib


def test_damage_only_check_sees_is_rebuilt_by_the_next_index(imgret, library, tmp_path, monkeypatch):
    """`check` marks a damaged vector file, so the next `index` rebuilds it (a writer's everyday check
    reads the head and tail only)."""
    photos, _ = library
    lib = _large_file_library(imgret, photos, tmp_path, monkeypatch)
    index_file = vector_file(lib)
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0x08
    index_file.write_bytes(bytes(data))
    assert "40 unchanged" in imgret("index", photos, "--library", lib).stderr  # the writer does not see it
    c = imgret("check", "--library", lib)
    assert c.code == 1 and "vector file" in c.stderr
    r = imgret("index", photos, "--library", lib)
    assert r.code == 0 and "40 updated" in r.stderr, r.stderr
    assert _index_file_is_sound(lib) and imgret("check", "--library", lib).code == 0


def test_a_graph_damaged_where_no_reader_checks_is_refused_while_searching(imgret, library, tmp_path, monkeypatch):
    """A one-shot query reads the graph itself and checks each neighbour list it reads: damage there
    gives one clear line, never a crash or an answer from it, and `check` + `index` repair it."""
    from imgret.runtime.graph_file import GraphFile

    photos, _ = library
    lib = _large_file_library(imgret, photos, tmp_path, monkeypatch)
    query = ["query", photos / "scene007.png", "--library", lib, "-N", "3"]
    good = imgret(*query).stdout  # exact search (40 pictures): the same answer from any sound graph
    exact_below = vectors.EXACT_SEARCH_LIMIT
    monkeypatch.setattr(vectors, "EXACT_SEARCH_LIMIT", 0)  # the damaged query walks the graph
    index_file = vector_file(lib)
    m = meta(lib)
    graph = GraphFile(str(index_file), dim=int(m["embedding_dim"]), dtype="f32", metric="cos",
                      count=int(m["index_count"]))
    firsts = [graph._start(slot) + 10 + 4 for slot in range(len(graph))]  # each node's first base neighbour
    graph.reset()
    data = bytearray(index_file.read_bytes())
    for at in firsts:
        if 256 <= at < len(data) - 256 - 4:  # not where readers check
            data[at:at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    index_file.write_bytes(bytes(data))
    r = imgret(*query)
    lines = r.stderr.strip().splitlines()
    assert r.code == 1 and r.stdout == "" and len(lines) == 1, r.stderr
    assert "damaged" in lines[0] and "imgret check" in lines[0]
    monkeypatch.setattr(vectors, "EXACT_SEARCH_LIMIT", exact_below)
    assert imgret("check", "--library", lib).code == 1
    assert "40 updated" in imgret("index", photos, "--library", lib).stderr
    assert imgret(*query).stdout == good
