"""Bad arguments: each gives one clear line and the documented exit code, or a sensible result."""

from __future__ import annotations

import pytest
from fakes import write_scenes
from harness import snapshot


@pytest.fixture
def indexed(imgret, photos, fake_model, tmp_path):
    lib = tmp_path / "lib"
    assert imgret("index", photos, "--library", lib, "--model", fake_model).code == 0
    return photos, lib


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["query", "{photo}", "-N", "0"], "must be at least 1", 2),
        (["query", "{photo}", "-N", "-1"], "must be at least 1", 2),
        (["query", "{photo}", "-N", "abc"], "not a valid integer", 2),
        (["query", "{photo}", "-N", "1e3"], "not a valid integer", 2),
        (["query", "{photo}", "-N", ""], "not a valid integer", 2),
        (["query", "{missing}"], "does not exist", 2),
        (["index", "{missing}"], "does not exist", 2),
        (["index"], "Missing argument", 2),
        (["query"], "Missing argument", 2),
        (["query", "{photo}", "--montage", "{tmp}"], "is a directory", 2),
        (["query", "{photo}", "--library", "{photo}"], "is a file", 2),
        (["index", "{photos}", "--library", "{photo}"], "is a file", 2),
        (["index", "{photos}", "--workers", "-1"], "not in the range", 2),
        (["index", "{photos}", "--workers", "1000"], "not in the range", 2),
        (["query", "{photo}", "--bogus"], "No such option", 2),
        (["index", "{photos}", "--model", "{tmp}"], "model file not found", 1),
        (["query", "{empty}"], "no query pictures found", 1),
        (["query", "/dev/null"], "cannot read query picture", 1),
        (["query", "{photo}", "--library", "{tmp}/nolib"], "no library", 1),
    ],
)
def test_bad_arguments_give_one_clear_line(imgret, indexed, tmp_path, args, message, code):
    photos, lib = indexed
    (tmp_path / "empty").mkdir()
    subst = {"photo": photos / "scene000.png", "photos": photos, "missing": tmp_path / "nope.jpg",
             "tmp": tmp_path, "empty": tmp_path / "empty"}
    full = [a.format(**subst) for a in args]
    if "--library" not in full:
        full += ["--library", str(lib)]
    r = imgret(*full)
    assert r.code == code, r.stderr
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("number", [str(10**12), str(10**30)])
def test_a_huge_number_of_results_returns_the_whole_library(imgret, indexed, number):
    photos, lib = indexed
    r = imgret("query", photos / "scene000.png", "--library", lib, "-N", number, "--paths")
    assert r.code == 0 and len(r.stdout.split()) == 11


def test_montage_into_a_missing_folder_is_one_clear_line(imgret, indexed, tmp_path):
    photos, lib = indexed
    r = imgret("query", photos / "scene000.png", "--library", lib, "--montage", tmp_path / "no" / "such" / "m.png")
    assert r.code == 2  # checked before the query runs: a usage error, nothing printed on stdout
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--montage" in lines[0] and "cannot write a picture" in lines[0]


def test_an_empty_folder_indexes_to_nothing_and_queries_find_nothing(imgret, tmp_path, fake_model):
    (tmp_path / "empty").mkdir()
    lib = tmp_path / "lib"
    r = imgret("index", tmp_path / "empty", "--library", lib, "--model", fake_model)
    assert r.code == 0 and "0 added, 0 updated, 0 removed, 0 unchanged, 0 skipped" in r.stderr
    write_scenes(tmp_path / "q", 1)
    q = imgret("query", tmp_path / "q" / "scene000.png", "--library", lib)
    assert q.code == 0 and q.stdout.strip() == "(no results)"


@pytest.mark.parametrize("name", ["lib", ".imgret", "album/lib"])
def test_a_library_inside_the_photo_folder_never_indexes_itself(imgret, photos, fake_model, name):
    lib = photos / name
    lib.mkdir(parents=True)
    write_scenes(lib, 2, start=70)  # pictures inside the library folder (a montage, say) stay out
    r = imgret("index", photos, "--library", lib, "--model", fake_model)
    assert r.code == 0 and "12 added" in r.stderr, r.stderr
    again = imgret("index", photos, "--library", lib)
    assert "0 added, 0 updated, 0 removed, 12 unchanged, 0 skipped" in again.stderr
    assert not [p for p in snapshot(lib) if p.startswith(bytes(lib))]


def test_a_model_that_fails_to_load_leaves_no_library_behind(imgret, photos, tmp_path):
    lib = tmp_path / "newlib"
    r = imgret("index", photos, "--library", lib, "--model", tmp_path / "missing.onnx")
    assert r.code == 1 and "model file not found" in r.stderr
    assert not lib.exists()
