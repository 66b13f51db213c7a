"""What `imgret query` prints: every readable query answered, exact paths in JSON, refused option mixes."""

from __future__ import annotations

import base64
import json
import os
import sys

import pytest
from fakes import scene, write_scenes

NON_UTF8 = b"caf\xe9.png"  # Latin-1 "café": not valid UTF-8


def path_from_json(row: dict, key: str) -> bytes:
    """The exact bytes of a path in a JSON row, decoded as README.md tells a script to."""
    return base64.b64decode(row[f"{key}_b64"]) if f"{key}_b64" in row else row[key].encode()


@pytest.fixture
def indexed(imgret, photos, fake_model):
    r = imgret("index", photos, "--model", fake_model)
    assert r.code == 0, r.stderr
    return photos


# -- one bad query picture does not sink the others ------------------------------------------------


def test_a_bad_query_among_good_ones_is_named_and_the_others_answered(imgret, indexed, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list")
    good = indexed / "scene003.png"
    r = imgret("query", good, notes, "-N", "2")
    assert r.code == 1
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 1 and "notes.txt" in errors[0] and "not a supported image format" in errors[0]
    assert errors[0].startswith("imgret: error: cannot read query picture ")
    assert f"# {good}" in r.stdout and "notes.txt" not in r.stdout
    assert len([line for line in r.stdout.splitlines() if not line.startswith("#")]) == 2


def test_a_query_folder_with_unreadable_files_answers_the_rest_as_json(imgret, indexed, tmp_path):
    queries = tmp_path / "queries"
    write_scenes(queries, 3, suffix=".jpg")
    (queries / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 50)  # a JPEG header and nothing else
    (queries / "empty.png").write_bytes(b"")
    r = imgret("query", queries, "-N", "1", "--json")
    assert r.code == 1
    rows = [json.loads(line) for line in r.stdout.splitlines()]  # every stdout line is valid JSON
    assert sorted(os.path.basename(row["query"]) for row in rows) == ["scene000.jpg", "scene001.jpg", "scene002.jpg"]
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2
    assert any("broken.jpg" in e for e in errors) and any("empty.png: empty file" in e for e in errors)


def test_every_query_read_means_exit_zero(imgret, indexed):
    r = imgret("query", indexed / "scene001.png", indexed / "scene002.png", "--json")
    assert r.code == 0 and r.stderr == ""


def test_all_queries_unreadable_exits_one_with_a_line_each(imgret, indexed, tmp_path):
    bad = [tmp_path / "a.jpg", tmp_path / "b.txt"]
    for p in bad:
        p.write_text("nope")
    r = imgret("query", *bad, "--paths")
    assert r.code == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 2


def test_the_library_api_reports_a_bad_query_without_raising(indexed, tmp_path, isolated_library):
    from imgret import Library

    (tmp_path / "x.png").write_bytes(b"not a png")
    with Library.open(isolated_library) as lib:
        good, bad = lib.query([indexed / "scene000.png", tmp_path / "x.png"], 2)
    assert good.ok and len(good.hits) == 2
    assert not bad.ok and bad.hits == [] and bad.reason == "not-an-image"


def test_a_montage_skips_the_query_that_could_not_be_read(imgret, indexed, tmp_path):
    (tmp_path / "bad.jpg").write_text("x")
    out = tmp_path / "m.png"
    r = imgret("query", indexed / "scene000.png", tmp_path / "bad.jpg", "-N", "3", "--montage", out)
    assert r.code == 1 and out.exists()


# -- options that contradict each other ------------------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["-0"], "--paths"),
        (["--null", "--json"], "--paths"),
        (["--json", "--paths"], "--json"),
        (["--montage", "{tmp}/out.txt"], ".jpg"),
        (["--montage", "{tmp}/out"], ".jpg"),
        (["--montage", "{tmp}/out.gif"], ".webp"),
    ],
)
def test_contradictory_options_are_a_usage_error(imgret, indexed, tmp_path, args, words):
    r = imgret("query", indexed / "scene000.png", *[a.format(tmp=tmp_path) for a in args])
    assert r.code == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


@pytest.mark.parametrize("name", ["m.jpg", "m.JPEG", "m.png", "m.webp"])
def test_montage_format_follows_the_suffix(imgret, indexed, tmp_path, name):
    from PIL import Image

    r = imgret("query", indexed / "scene000.png", "-N", "2", "--montage", tmp_path / name)
    assert r.code == 0, r.stderr
    with Image.open(tmp_path / name) as im:
        want = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[os.path.splitext(name)[1].lower()]
        assert im.format == want


def test_make_montage_refuses_an_unknown_suffix(tmp_path):
    from imgret.runtime.montage import make_montage
    from imgret.runtime.results import QueryResult

    with pytest.raises(ValueError, match=".jpg"):
        make_montage([QueryResult("q.png", [])], tmp_path / "m.txt")
    assert not (tmp_path / "m.txt").exists()


# -- JSON says exactly which file -------------------------------------------------------------------


def test_json_query_and_path_are_absolute_even_for_a_relative_query(imgret, indexed, monkeypatch):
    monkeypatch.chdir(indexed)
    r = imgret("query", "scene004.png", "-N", "2", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and all(os.path.isabs(row["query"]) and os.path.isabs(row["path"]) for row in rows)
    assert rows[0]["query"] == str(indexed / "scene004.png")
    assert all("path_b64" not in row and "query_b64" not in row for row in rows)  # plain UTF-8 names


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_json_round_trips_every_path_in_the_library_including_non_utf8(imgret, photos, fake_model, tmp_path):
    raw_folder = os.fsencode(photos)
    scene(40).save(os.fsdecode(os.path.join(raw_folder, NON_UTF8)))
    scene(41).save(photos / "caf\\xe9.png")  # really named with a backslash: must not look the same
    scene(42).save(photos / "naïve ✓.png")  # valid UTF-8, not ASCII
    assert imgret("index", photos, "--model", fake_model).code == 0
    on_disk = {os.path.join(raw_folder, name) for name in os.listdir(raw_folder)}
    r = imgret("query", os.fsdecode(os.path.join(raw_folder, NON_UTF8)), "-N", "1000", "--include-self", "--json")
    assert r.code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert {path_from_json(row, "path") for row in rows} == on_disk
    assert {path_from_json(row, "query") for row in rows} == {os.path.join(raw_folder, NON_UTF8)}
    odd = [row for row in rows if "path_b64" in row]
    assert len(odd) == 1 and base64.b64decode(odd[0]["path_b64"]).endswith(NON_UTF8)
    assert "query_b64" in rows[0]
    backslash = [row for row in rows if row["path"].endswith("caf\\xe9.png") and "path_b64" not in row]
    assert len(backslash) == 1  # the file really named so is told apart by the missing path_b64


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_paths_output_gives_the_exact_bytes(imgret, photos, fake_model):
    raw = os.path.join(os.fsencode(photos), NON_UTF8)
    scene(40).save(os.fsdecode(raw))
    imgret("index", photos, "--model", fake_model)
    r = imgret("query", os.fsdecode(raw), "-N", "1000", "--include-self", "--paths", "-0")
    assert raw in r.stdout_bytes.split(b"\0")
    r = imgret("query", os.fsdecode(raw), "-N", "1000", "--include-self", "--paths")
    assert raw in r.stdout_bytes.split(b"\n")
