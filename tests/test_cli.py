"""End-to-end CLI behaviour on generated pictures with a fake encoder."""

from __future__ import annotations

import json
import os

import pytest
from fakes import scene, write_scenes
from PIL import Image


def test_index_then_query_finds_the_near_copy(imgret, photos, fake_model, tmp_path):
    scene(4).resize((80, 80)).save(photos / "copy_of_4.jpg", quality=90)
    r = imgret("index", photos, "--model", fake_model)
    assert r.code == 0, r.stderr
    assert "13 added" in r.stderr
    q = imgret("query", photos / "scene004.png", "-N", "3")
    assert q.code == 0, q.stderr
    lines = q.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].split()[0] == "1"
    assert lines[0].endswith("copy_of_4.jpg")
    assert "scene004.png" not in q.stdout  # the query itself is left out


def test_include_self_returns_the_query_first(imgret, photos, fake_model):
    imgret("index", photos, "--model", fake_model)
    q = imgret("query", photos / "scene002.png", "-N", "1", "--include-self", "--paths")
    assert q.stdout.strip() == str(photos / "scene002.png")


def test_reindex_embeds_only_changes_and_tracks_renames_and_deletes(imgret, photos, fake_model):
    assert imgret("index", photos, "--model", fake_model).code == 0
    again = imgret("index", photos)
    assert "0 added, 0 updated, 0 removed, 12 unchanged" in again.stderr
    (photos / "scene001.png").rename(photos / "renamed.png")
    (photos / "scene002.png").unlink()
    scene(99).save(photos / "scene003.png")  # changed content
    os.utime(photos / "scene003.png", ns=(1, 1))
    r = imgret("index", photos)
    assert "1 added, 1 updated, 2 removed, 9 unchanged" in r.stderr
    assert "1 reused by content" in r.stderr
    q = imgret("query", photos / "renamed.png", "-N", "100", "--include-self", "--paths")
    names = {os.path.basename(p) for p in q.stdout.split()}
    assert "renamed.png" in names and "scene001.png" not in names and "scene002.png" not in names
    assert len(names) == 11


def test_json_lines_have_the_documented_keys(imgret, photos, fake_model):
    imgret("index", photos, "--model", fake_model)
    q = imgret("query", photos / "scene000.png", photos / "scene005.png", "-n", "2", "--json")
    rows = [json.loads(line) for line in q.stdout.splitlines()]
    assert len(rows) == 4
    assert set(rows[0]) == {"query", "rank", "path", "distance", "copies"}
    assert [r["rank"] for r in rows] == [1, 2, 1, 2]
    assert rows[0]["distance"] <= rows[1]["distance"]


def test_nul_separated_paths(imgret, photos, fake_model):
    imgret("index", photos, "--model", fake_model)
    q = imgret("query", photos / "scene000.png", "-N", "3", "--paths", "-0")
    parts = q.stdout_bytes.split(b"\0")
    assert len(parts) == 4 and parts[-1] == b""


def test_query_with_a_folder_of_queries(imgret, photos, fake_model, tmp_path):
    imgret("index", photos, "--model", fake_model)
    queries = tmp_path / "test"
    write_scenes(queries, 3, start=0, suffix=".jpg")
    q = imgret("query", queries, "-N", "1", "--json")
    rows = [json.loads(line) for line in q.stdout.splitlines()]
    assert [os.path.basename(r["path"]) for r in rows] == ["scene000.png", "scene001.png", "scene002.png"]


def test_number_above_library_size_returns_what_there_is(imgret, photos, fake_model):
    imgret("index", photos, "--model", fake_model)
    q = imgret("query", photos / "scene000.png", "-N", str(10**12), "--paths")
    assert q.code == 0
    assert len(q.stdout.split()) == 11


def test_montage_shows_query_and_results(imgret, photos, fake_model, tmp_path):
    imgret("index", photos, "--model", fake_model)
    out = tmp_path / "m.png"
    q = imgret("query", photos / "scene000.png", "-N", "4", "--montage", out)
    assert q.code == 0
    with Image.open(out) as im:
        assert im.width > im.height * 3  # one row: query + 4 results
        px = im.convert("RGB").getpixel((4, 4))
    assert px[0] > 150 and px[1] < 100  # the red frame around the query


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["query", "{photo}", "-N", "0"], "must be at least 1", 2),
        (["query", "{photo}", "-N", "-1"], "must be at least 1", 2),
        (["query", "{photo}", "-N", "abc"], "not a valid integer", 2),
        (["query", "{missing}"], "does not exist", 2),
        (["query", "{photo}", "--library", "{nolib}"], "no library", 1),
        (["index", "{missing}"], "does not exist", 2),
        (["query", "{notimage}"], "cannot read query picture", 1),
        (["index", "{photos}", "--model", "no-such-model"], "unknown model", 1),
        (["info", "--library", "{nolib}"], "no library", 1),
    ],
)
def test_errors_are_one_clear_line(imgret, photos, fake_model, tmp_path, args, message, code):
    imgret("index", photos, "--model", fake_model)
    (tmp_path / "notes.jpg").write_text("not a picture")
    subst = {"photo": photos / "scene000.png", "missing": tmp_path / "nope.jpg", "nolib": tmp_path / "nolib",
             "notimage": tmp_path / "notes.jpg", "photos": photos}
    r = imgret(*[a.format(**subst) for a in args])
    assert r.code == code
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_other_model_is_refused_without_rebuild(imgret, photos, fake_model, tmp_path):
    from fakes import make_thumbnail_model

    other = make_thumbnail_model(tmp_path / "other.onnx", grid=8, model_id="other")
    imgret("index", photos, "--model", fake_model)
    r = imgret("index", photos, "--model", other)
    assert r.code == 1 and "--rebuild" in r.stderr
    r = imgret("index", photos, "--model", other, "--rebuild")
    assert r.code == 0 and "12 added" in r.stderr
    info = json.loads(imgret("info", "--json").stdout)
    assert info["model_id"] == "other" and info["pictures"] == 12


def test_info_reports_counts_and_skips(imgret, photos, fake_model):
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    imgret("index", photos, "--model", fake_model)
    info = json.loads(imgret("info", "--json").stdout)
    assert info["pictures"] == 12 and info["skipped"] == 1
    assert info["index_fresh"] is True
    text = imgret("info").stdout
    assert "pictures:   12" in text


def test_skipped_files_listed_with_verbose(imgret, photos, fake_model):
    (photos / "fake.jpg").write_text("<html></html>")
    r = imgret("index", photos, "--model", fake_model, "--verbose")
    assert "skipped 1: not-an-image" in r.stderr
    assert "fake.jpg" in r.stderr


def test_python_dash_m_works():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "imgret", "--version"], capture_output=True, text=True, check=True)
    assert "imgret" in out.stdout


def test_the_library_keeps_its_own_model_when_the_original_file_is_gone(imgret, photos, tmp_path):
    from fakes import make_thumbnail_model

    model = make_thumbnail_model(tmp_path / "gone.onnx")
    imgret("index", photos, "--model", model)
    before = imgret("query", photos / "scene000.png").stdout
    model.unlink()
    r = imgret("info")
    assert r.code == 0 and "pictures:   12" in r.stdout
    q = imgret("query", photos / "scene000.png")  # no --model: the library's own copy
    assert q.code == 0 and q.stdout == before


@pytest.mark.parametrize("spelling", ["--library", "-l", "--index"])
def test_library_option_spellings(imgret, tmp_path, photos, fake_model, spelling):
    lib = tmp_path / "elsewhere"
    r = imgret("index", photos, spelling, lib, "--model", fake_model)
    assert r.code == 0, r.stderr
    assert (lib / "catalogue.sqlite").is_file()
    q = imgret("query", photos / "scene002.png", spelling, lib, "-N", "1", "--paths")
    assert q.code == 0 and q.stdout.strip() and "scene002" not in q.stdout, q.stderr  # itself left out
    info = imgret("info", spelling, lib, "--json")
    assert json.loads(info.stdout)["pictures"] == 12
    deprecated = spelling == "--index"
    for out in (r, q, info):
        assert ("--index is deprecated; use --library" in out.stderr) is deprecated


def test_old_option_spellings_are_hidden_from_help(imgret):
    for command in ("index", "query", "info", "eval"):
        text = imgret(command, "--help").stdout
        assert "--index" not in text and "IMGRET_INDEX" not in text
    assert "--library" in imgret("query", "--help").stdout
    assert "--keep-library" in imgret("eval", "--help").stdout


@pytest.mark.parametrize("variable", ["IMGRET_LIBRARY", "IMGRET_INDEX"])
def test_library_from_the_environment(imgret, tmp_path, photos, fake_model, monkeypatch, variable):
    monkeypatch.delenv("IMGRET_LIBRARY")
    monkeypatch.setenv(variable, str(tmp_path / "from-env"))
    r = imgret("index", photos, "--model", fake_model)
    assert r.code == 0, r.stderr
    assert (tmp_path / "from-env" / "catalogue.sqlite").is_file()
    assert ("IMGRET_INDEX is deprecated; use IMGRET_LIBRARY" in r.stderr) is (variable == "IMGRET_INDEX")
    # An option beats the environment, and then the old variable is not mentioned.
    other = imgret("info", "--library", tmp_path / "from-env", "--json")
    assert other.code == 0 and "deprecated" not in other.stderr


def test_eval_keep_library_and_its_old_spelling(imgret, tmp_path, fake_model):
    for name, colour in {"a": (200, 20, 20), "b": (20, 20, 200)}.items():
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (colour[0], colour[1] + 10 * i, colour[2])).save(tmp_path / "data" / name / f"{i}.png")
    for spelling, folder in (("--keep-library", "kept"), ("--index", "kept-old")):
        r = imgret("eval", tmp_path / "data", "--model", fake_model, spelling, tmp_path / folder, "--json")
        assert r.code == 0, r.stderr
        assert (tmp_path / folder / "catalogue.sqlite").is_file()
        assert ("--index is deprecated; use --keep-library" in r.stderr) is (spelling == "--index")
