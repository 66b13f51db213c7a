"""Which files count, and one count: `index` and `info` agree on what was skipped, in the same words;
what is not recorded is "passed over", by suffix or reason."""

from __future__ import annotations

import json
import os
import re

from fakes import scene


def _summary_counts(stderr: str, word: str) -> dict[str, int]:
    """``{reason: n}`` from the summary's ``  WORD n: reason`` lines."""
    out = {}
    for line in stderr.splitlines():
        m = re.match(rf"  {word} (\d+): (\S+)", line)
        if m:
            out[m.group(2)] = int(m.group(1))
    return out


def _total(stderr: str, word: str) -> int:
    m = re.search(rf"(\d+) {word}\b", stderr.splitlines()[0])
    return int(m.group(1)) if m else 0


def _odd_folder(photos):
    """Three pictures that are recorded as skipped, a JPEG and notes under other suffixes, a hard link
    and a symlink to a picture already seen, and a broken link."""
    (photos / "empty.png").write_bytes(b"")
    (photos / "page.jpg").write_text("<html></html>")
    (photos / "cut.png").write_bytes((photos / "scene000.png").read_bytes()[:60])
    scene(50).save(photos / "holiday.txt", format="JPEG")  # a JPEG under a name that is not a picture's
    (photos / "notes.txt").write_text("hello")
    (photos / "README").write_text("hello")
    os.link(photos / "scene001.png", photos / "hardlink.png")
    os.symlink("scene002.png", photos / "link.png")
    os.symlink("nowhere.png", photos / "broken.jpg")


def test_index_and_info_count_the_same_skipped_files_in_the_same_words(imgret, photos, fake_model):
    _odd_folder(photos)
    first = imgret("index", photos, "--model", fake_model)
    assert first.code == 0, first.stderr
    info = json.loads(imgret("info", "--json").stdout)
    assert _total(first.stderr, "skipped") == info["skipped"] == 3
    assert _summary_counts(first.stderr, "skipped") == info["skip_reasons"] == {
        "corrupt": 1, "empty": 1, "not-an-image": 1}
    text = imgret("info").stdout
    assert "skipped:    3 (corrupt: 1, empty: 1, not-an-image: 1)" in text
    # A second run changes nothing and still says so with the same numbers.
    again = imgret("index", photos)
    assert _total(again.stderr, "skipped") == 3 and "3 from earlier runs" in again.stderr
    assert _summary_counts(again.stderr, "skipped") == info["skip_reasons"]
    assert json.loads(imgret("info", "--json").stdout)["skipped"] == 3


def test_passed_over_files_are_counted_by_suffix_and_reason(imgret, photos, fake_model):
    _odd_folder(photos)
    r = imgret("index", photos, "--model", fake_model, "--verbose")
    assert _summary_counts(r.stderr, "passed over") == {
        ".txt": 2, "(no": 1, "same-file-seen": 2, "broken-symlink": 1}
    assert _total(r.stderr, "passed over") == 6
    assert "passed over 2: .txt (not a picture suffix)" in r.stderr
    assert "passed over 1: (no suffix) (not a picture suffix)" in r.stderr
    assert str(photos / "holiday.txt") in r.stderr  # --verbose names each file
    quiet = imgret("index", photos)
    assert "passed over 2: .txt" in quiet.stderr and str(photos / "holiday.txt") not in quiet.stderr


def test_a_file_that_cannot_be_opened_is_passed_over_and_tried_again(imgret, photos, fake_model, tmp_path):
    from imgret import Library

    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        report = lib.add([photos / "scene000.png", tmp_path / "gone.png"])
    assert report.added == 1 and report.skipped_count == 0
    assert report.passed_over == {"missing": [str(tmp_path / "gone.png")]}
