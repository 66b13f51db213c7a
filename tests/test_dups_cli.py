"""``imgret dups`` and folded queries on real copies, with the bundled encoder: groups largest first,
the biggest picture kept, exact paths in JSON, copies for a pipe, pages; nothing is ever deleted."""

from __future__ import annotations

import base64
import json
import os
import re

import pytest
from copies_fixture import original, write_collection


@pytest.fixture
def collection(imgret, tmp_path):
    families = write_collection(tmp_path / "photos")
    r = imgret("index", tmp_path / "photos")
    assert r.code == 0, r.stderr
    return tmp_path / "photos", families


def listing(folder):
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir())


def groups_of(stdout: str) -> list[list[tuple[str, str]]]:
    """The table as groups of (role, file name)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("# group"):
            out.append([])
        elif line.strip():
            role, *_, path = line.split()
            out[-1].append((role, os.path.basename(path)))
    return out


def test_dups_groups_each_family_largest_first_keeping_the_biggest_picture(imgret, collection):
    folder, families = collection
    before = listing(folder)
    r = imgret("dups")
    assert r.code == 0, r.stderr
    groups = groups_of(r.stdout)
    assert [len(g) for g in groups] == [5, 3, 3]
    assert {name for _, name in groups[0]} == {p.name for p in families["p0"]}
    assert {frozenset(n for _, n in g) for g in groups[1:]} == {frozenset(p.name for p in families[k])
                                                                for k in ("p1", "p2")}
    for group in groups:  # the full-size PNG original is kept (most pixels, then most bytes)
        assert group[0][0] == "keep" and re.fullmatch(r"p\d\.png", group[0][1])
        assert [role for role, _ in group[1:]].count("keep") == 0
    assert ("identical", "p0-same.png") in groups[0] or group[0][1] == "p0-same.png"
    assert "3 groups, 8 copies not kept" in r.stderr and "threshold 0.1, the bundled model's" in r.stderr
    assert listing(folder) == before  # imgret never deletes or moves anything


def test_dups_json_has_one_object_per_group_with_exact_paths_and_facts(imgret, collection):
    folder, families = collection
    odd = os.fsencode(folder) + b"/caf\xe9-small.png"  # a copy whose name is not UTF-8
    with open(odd, "wb") as fh:
        fh.write((folder / "p1-small.png").read_bytes()[:-1] + b"\0")  # same picture, other bytes
    assert imgret("index", folder).code == 0
    r = imgret("dups", "--json")
    assert r.code == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["size"] for row in rows] == [5, 4, 3]
    for row in rows:
        assert row["keep"] == row["members"][0]["path"] and row["members"][0]["distance"] == 0
        assert all(set(m) >= {"path", "distance", "pixels", "bytes"} for m in row["members"])
        assert row["members"][0]["pixels"] == 160 * 120
        assert all(os.path.isabs(m["path"]) for m in row["members"])
    small = next(m for m in rows[0]["members"] if m["path"].endswith("p0-small.png"))
    assert small["pixels"] == 80 * 60 and small["bytes"] == (folder / "p0-small.png").stat().st_size
    assert 0 < small["distance"] < 0.1
    odd_rows = [m for m in rows[1]["members"] if "path_b64" in m]
    assert len(odd_rows) == 1 and base64.b64decode(odd_rows[0]["path_b64"]) == odd


def test_dups_paths_lists_every_copy_not_kept_as_raw_bytes(imgret, collection):
    folder, families = collection
    r = imgret("dups", "--paths", "-0")
    assert r.code == 0, r.stderr
    got = set(r.stdout_bytes.split(b"\0")[:-1])
    every = {os.fsencode(p) for fam in families.values() for p in fam}
    kept = {os.fsencode(folder / f"p{i}.png") for i in range(3)} | {os.fsencode(folder / "p0-same.png")}
    assert len(got) == 8 and got <= every and len(got & kept) <= 1  # p0 or its identical twin is kept
    lines = imgret("dups", "--paths").stdout_bytes.splitlines()
    assert set(lines) == got


def test_min_size_and_threshold_narrow_the_groups(imgret, collection):
    r = imgret("dups", "--min-size", "4")
    assert [len(g) for g in groups_of(r.stdout)] == [5]
    strict = imgret("dups", "--threshold", "0.001")
    assert strict.code == 0 and "threshold 0.001, given with --threshold" in strict.stderr
    names = {n for g in groups_of(strict.stdout) for _, n in g}
    assert "p1-small.png" in names and "p0-crop.jpg" not in names and "p1-crop.jpg" not in names


@pytest.mark.parametrize("args, message", [
    (["--json", "--paths"], "two different outputs"),
    (["-0"], "give --paths too"),
    (["--min-size", "1"], "at least 2 files"),
    (["--threshold", "-0.1"], "--threshold"),
])
def test_contradictory_or_bad_dups_options_are_usage_errors(imgret, collection, args, message):
    r = imgret("dups", *args)
    assert r.code == 2 and message in r.stderr and r.stdout == ""


def test_dups_html_writes_a_page_of_the_groups(imgret, collection, tmp_path):
    r = imgret("dups", "--html", tmp_path / "page")
    assert r.code == 0, r.stderr
    page = (tmp_path / "page" / "index.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 11 and all(s.startswith("thumbs/") for s in srcs)
    assert all((tmp_path / "page" / s).is_file() for s in srcs)
    assert page.count('class="keep"') == 3 and "page written to" in r.stderr


def test_a_query_folds_copies_into_the_better_hit(imgret, collection):
    folder, _ = collection
    r = imgret("query", folder / "p1.png", "-N", "2")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[2].endswith("p1-small.png") and lines[0].endswith("+1 copy")
    assert "p1-crop" not in r.stdout and "p1" not in os.path.basename(lines[1].split()[2])
    rows = [json.loads(line) for line in imgret("query", folder / "p1.png", "-N", "2", "--json").stdout.splitlines()]
    assert [os.path.basename(c["path"]) for c in rows[0]["copies"]] == ["p1-crop.jpg"]
    assert rows[0]["copies"][0]["distance"] >= rows[0]["distance"] and rows[1]["copies"] == []


def test_n_counts_distinct_pictures_and_identical_files_are_listed_as_copies(imgret, collection):
    folder, _ = collection
    r = imgret("query", folder / "p3.png", "-N", "7", "--json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    # 15 other files, 7 other pictures: each picture once, its copies (the identical file too) under it
    assert len(rows) == 7 and sum(1 + len(row["copies"]) for row in rows) == 15
    p0 = next(row for row in rows if os.path.basename(row["path"]).startswith("p0"))
    family = {os.path.basename(row["path"]) for row in [p0, *p0["copies"]]}
    assert family == {"p0.png", "p0-same.png", "p0-flip.png", "p0-small.png", "p0-crop.jpg"}
    every = [json.loads(line) for line in imgret("query", folder / "p3.png", "-N", "7", "--all-copies",
                                                 "--json").stdout.splitlines()]
    assert len(every) == 7 and all(row["copies"] == [] for row in every)
    assert len({os.path.basename(row["path"]).split("-")[0].split(".")[0] for row in every}) < 7


def test_exclude_copies_leaves_out_the_querys_own_copies(imgret, collection, tmp_path):
    folder, _ = collection
    outside = tmp_path / "query.jpg"
    original(2).resize((120, 90)).save(outside, quality=90)  # a copy of p2 from outside the library
    plain = imgret("query", outside, "-N", "1", "--paths").stdout_bytes
    assert os.path.basename(plain.strip()).startswith(b"p2")
    r = imgret("query", outside, "-N", "3", "--exclude-copies", "--paths")
    assert r.code == 0 and b"p2" not in r.stdout_bytes and len(r.stdout_bytes.splitlines()) == 3
    refused = imgret("query", outside, "--exclude-copies", "--include-self")
    assert refused.code == 2 and "contradict" in refused.stderr


def test_query_html_page_shows_the_query_beside_its_hits(imgret, collection, tmp_path):
    folder, _ = collection
    r = imgret("query", folder / "p1.png", folder / "p4.png", "-N", "3", "--html", tmp_path / "q")
    assert r.code == 0, r.stderr
    page = (tmp_path / "q" / "index.html").read_text()
    assert page.count('class="query"') == 2 and len(re.findall(r'<img src="thumbs/', page)) == 8


def test_the_library_api_gives_groups_and_folded_hits(collection, isolated_library):
    from imgret import Library

    folder, families = collection
    with Library.open(isolated_library) as lib:
        found = lib.duplicates(min_size=3)
        plain = lib.query([str(folder / "p1.png")], 2, fold=False)[0].hits
        folded = lib.query([str(folder / "p1.png")], 2)[0].hits
    assert [len(g) for g in found.groups] == [5, 3, 3] and found.rule.source == "bundled model"
    kept = {found.paths[g.keep] for g in found.groups}
    assert str(folder / "p1.png") in kept and str(folder / "p2.png") in kept
    assert [h.path for h in plain] == [str(folder / "p1-small.png"), str(folder / "p1-crop.jpg")]
    assert folded[0].path == plain[0].path and [c.path for c in folded[0].copies] == [plain[1].path]
    assert folded[1].path not in {str(p) for p in families["p1"]}
