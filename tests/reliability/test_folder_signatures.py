"""Folder signatures: a re-index reads the catalogue's rows only for folders whose pictures changed,
and never misses a change because of a signature (removed and new folders, edits of the same size,
recorded skips, hard links, linked folders, relocation, files to be tried again, older writers)."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest
from fakes import scene, write_scenes
from harness import child_env, run_imgret

from imgret.runtime.catalogue import Catalogue
from imgret.runtime.library import Library
from imgret.runtime.maintenance import relocate_library
from imgret.runtime.prepare import Prepared, prepare


@pytest.fixture
def fetched(monkeypatch):
    """The folders whose rows the catalogue was asked for (each call still answered for real)."""
    asked: list[str] = []
    real = Catalogue.known_in

    def counting(self, folder, subfolders=()):
        asked.append(folder)
        return real(self, folder, subfolders)

    monkeypatch.setattr(Catalogue, "known_in", counting)
    return asked


@pytest.fixture
def tree(tmp_path):
    """Three folders of pictures (and a note) below ``photos``."""
    photos = tmp_path / "photos"
    for i, name in enumerate(("a", "b", "c")):
        write_scenes(photos / name, 3, start=10 * i, suffix=".bmp" if name == "b" else ".png")
    (photos / "a" / "notes.txt").write_text("not a picture")
    return photos


def index(tmp_path, photos, **kwargs):
    with Library.open_writable(tmp_path / "lib", **kwargs) as lib:
        return lib.index(photos)


def test_a_run_with_nothing_changed_reads_no_row_and_an_edited_folder_only_its_own(tmp_path, fake_model, tree,
                                                                                   fetched):
    first = index(tmp_path, tree, model=fake_model)
    assert first.added == 9 and set(fetched) == {str(tree), *(str(tree / n) for n in "abc")}
    fetched.clear()
    again = index(tmp_path, tree)
    assert (again.unchanged, again.added, again.updated, again.removed) == (9, 0, 0, 0)
    assert fetched == [] and list(again.passed_over) == [".txt"]  # still counted from the walk
    pic = tree / "b" / "scene011.bmp"
    other = tree / "c" / "scene020.png"
    before = pic.stat()
    scene(99).save(pic)  # an edit of the same size (a BMP of the same dimensions) ...
    assert pic.stat().st_size == before.st_size
    os.utime(pic, ns=(before.st_atime_ns, before.st_mtime_ns + 1000))  # ... with a new mtime
    st = other.stat()
    replacement = other.with_suffix(".new")
    shutil.copyfile(other, replacement)
    os.replace(replacement, other)  # another file (inode) of the same size and mtime: the same, as ever
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = index(tmp_path, tree)
    assert (edited.updated, edited.unchanged, edited.added) == (1, 8, 0)
    assert sorted(fetched) == [str(tree / "b"), str(tree / "c")]
    fetched.clear()
    assert index(tmp_path, tree).unchanged == 9 and fetched == []  # signed again


def test_removed_and_new_folders_are_found(tmp_path, fake_model, tree, fetched):
    index(tmp_path, tree, model=fake_model)
    shutil.rmtree(tree / "a")
    write_scenes(tree / "c" / "deeper", 2, start=50)
    report = index(tmp_path, tree)
    assert (report.removed, report.added, report.unchanged) == (3, 2, 6)
    with Library.open(tmp_path / "lib") as lib:
        assert len(lib) == 8
    fetched.clear()
    assert index(tmp_path, tree).unchanged == 8 and fetched == []
    shutil.rmtree(tree / "c")  # a folder and the one inside it
    assert index(tmp_path, tree).removed == 5


def test_recorded_skips_stay_skipped_and_counted(tmp_path, fake_model, tree, fetched):
    (tree / "b" / "broken.png").write_bytes(b"not a png at all")
    first = index(tmp_path, tree, model=fake_model)
    assert first.added == 9 and first.skipped_count == 1
    for _ in range(2):
        fetched.clear()
        report = index(tmp_path, tree)
        assert report.unchanged == 9 and report.previously_skipped == 1
        assert report.skipped == {first.skipped and next(iter(first.skipped)): [str(tree / "b" / "broken.png")]}
        assert fetched == [str(tree / "b")]  # the folder with a recorded skip is compared: a report names it


def test_a_file_to_be_tried_again_keeps_its_folder_unsigned(tmp_path, fake_model, tree, monkeypatch):
    flaky = str(tree / "c" / "scene021.png")

    def source(paths, size):  # the decoders, except that one file cannot be read this time
        for p in paths:
            yield Prepared(p, None, None, reason="unreadable") if p == flaky else prepare(p, size)

    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        first = lib.index(tree, source=source)
    assert first.added == 8 and first.passed_over["unreadable"] == [flaky]
    assert index(tmp_path, tree).added == 1  # its folder was not signed, so it is tried again


def test_hard_links_across_folders_are_counted_once_on_every_run(tmp_path, fake_model, tree, fetched):
    os.link(tree / "a" / "scene000.png", tree / "c" / "same.png")
    first = index(tmp_path, tree, model=fake_model)
    assert first.added == 9 and first.passed_over["same-file-seen"] == [str(tree / "c" / "same.png")]
    fetched.clear()
    again = index(tmp_path, tree)
    assert again.unchanged == 9 and again.passed_over["same-file-seen"] == [str(tree / "c" / "same.png")]
    assert fetched == [str(tree / "c")]  # a folder with a picture passed over is never trusted
    os.unlink(tree / "a" / "scene000.png")  # now the link is the only name of that file
    report = index(tmp_path, tree)  # the link is now that file's only name: found, its vector reused
    assert (report.added, report.removed, report.reused, report.unchanged) == (1, 1, 1, 8)
    assert "same-file-seen" not in report.passed_over


def test_a_linked_folder_outside_the_tree_is_followed_and_its_changes_found(tmp_path, fake_model, tree):
    outside = tmp_path / "elsewhere"
    write_scenes(outside, 2, start=70)
    os.symlink(outside, tree / "linked")
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        assert lib.index(tree, follow_outside=True).added == 11
    with Library.open_writable(tmp_path / "lib") as lib:
        assert lib.index(tree, follow_outside=True).unchanged == 11
    write_scenes(outside, 1, start=80)
    with Library.open_writable(tmp_path / "lib") as lib:
        report = lib.index(tree, follow_outside=True)
    assert (report.added, report.unchanged) == (1, 11)


def test_signatures_move_with_a_relocated_folder(tmp_path, fake_model, tree, fetched):
    index(tmp_path, tree, model=fake_model)
    moved = tmp_path / "moved"
    tree.rename(moved)
    relocate_library(tmp_path / "lib", tree, moved)
    fetched.clear()
    report = index(tmp_path, moved)
    assert (report.unchanged, report.added, report.removed) == (9, 0, 0) and fetched == []


def test_indexing_a_folder_inside_the_root_leaves_the_other_folders_alone(tmp_path, fake_model, tree):
    index(tmp_path, tree, model=fake_model)
    shutil.rmtree(tree / "c")
    report = index(tmp_path, tree / "a")
    assert (report.unchanged, report.removed) == (3, 0)  # c is not below a
    assert index(tmp_path, tree).removed == 3


def test_a_library_made_without_signatures_is_compared_once_then_signed(tmp_path, fake_model, tree, fetched):
    index(tmp_path, tree, model=fake_model)
    db = sqlite3.connect(tmp_path / "lib" / "catalogue.sqlite")
    with db:  # as a catalogue written before the folders table existed
        db.execute("DROP TABLE folders")
        db.execute("DELETE FROM meta WHERE key = 'folders_stamp'")
    db.close()
    shutil.rmtree(tree / "c")  # a folder gone: found through the rows alone, the table being new
    fetched.clear()
    report = index(tmp_path, tree)
    assert (report.unchanged, report.removed) == (6, 3) and len(fetched) == 4
    fetched.clear()
    assert index(tmp_path, tree).unchanged == 6 and fetched == []


def test_a_change_by_a_writer_that_keeps_no_signatures_is_not_missed(tmp_path, fake_model, tree):
    """An older imgret removing a row (``imgret`` API ``remove``) leaves the folder's signature as it
    was; it moves the generation on, which unties the signatures."""
    index(tmp_path, tree, model=fake_model)
    db = sqlite3.connect(tmp_path / "lib" / "catalogue.sqlite")
    with db:
        row = db.execute("SELECT id FROM files WHERE path = ?", (b"b/scene011.bmp",)).fetchone()[0]
        db.execute("DELETE FROM files WHERE id = ?", (row,))
        db.execute("UPDATE meta SET value = value + 1 WHERE key = 'catalogue_generation'")
    db.close()
    report = index(tmp_path, tree)
    assert (report.added, report.unchanged) == (1, 8)


@pytest.mark.parametrize("point", ["before-batch-commit", "after-batch-commit", "before-final-commit"])
def test_a_kill_before_the_last_commit_leaves_signatures_that_only_cost_work(tmp_path, fake_model, tree, point):
    index(tmp_path, tree, model=fake_model)
    write_scenes(tree / "b", 2, start=60)
    shutil.rmtree(tree / "c")
    killed = run_imgret("index", tree, "--library", tmp_path / "lib",
                        env=child_env(IMGRET_FAULT_POINT=point, IMGRET_COMMIT_EVERY="1"))
    assert killed.code != 0
    report = index(tmp_path, tree)
    assert (report.added + report.updated, report.removed, report.unchanged) in {(2, 3, 6), (1, 3, 7), (0, 3, 8)}
    assert index(tmp_path, tree).unchanged == 8
    with Library.open(tmp_path / "lib") as lib:
        assert len(lib) == 8
