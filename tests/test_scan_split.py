"""The walk in two processes (imgret.runtime.scan_split, scan_helper) against the serial walk, the reference: the
same items in the same order and the same signatures left over, whether the helper walked its part,
was given up (dead, hung, garbled) or had its part walked again (a hard link or a linked folder
across the cut). The thresholds are lowered so that tiny trees are split."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from fakes import write_scenes

from imgret.runtime import scan_helper, scan_split
from imgret.runtime.library import Library
from imgret.runtime.scan import Listing, Scan, Skipped
from imgret.runtime.scan_split import WalkHelper


@pytest.fixture(autouse=True)
def tiny_trees_are_split(monkeypatch):
    monkeypatch.setattr(scan_split, "MIN_FOLDERS", 0)
    monkeypatch.setenv(scan_split.HELPER_ENV, "on")  # whatever the machine's load


def picture(path, data: bytes = b"not really a jpeg") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def tree(tmp_path):
    """Four top-level folders (the helper gets the last ones), nested folders, other files."""
    root = tmp_path / "photos"
    for top in ("a", "b", "c", "d"):
        for i in range(3):
            picture(root / top / f"p{i}.jpg", top.encode() * (i + 1))
        picture(root / top / "deeper" / "x.png")
        picture(root / top / "notes.txt")
        picture(root / top / ".hidden.jpg")
    picture(root / "top.jpg")
    return root


def recorded(root) -> dict[str, bytes | None]:
    """The signatures a catalogue would hold after indexing ``root`` as it is now."""
    return {item.folder: item.signature for item in Scan(root).listings() if type(item) is Listing}


def both_ways(root, signatures=None, **kwargs) -> WalkHelper:
    """Walk ``root`` serially and split; assert the same items and the same signatures left over."""
    serial_left, split_left = dict(signatures or {}), dict(signatures or {})
    serial = list(Scan(root, signatures=serial_left, **kwargs).listings())
    helper = WalkHelper.start()
    split = list(Scan(root, signatures=split_left, helper=helper, **kwargs).listings())
    assert split == serial
    assert split_left == serial_left
    assert helper.process.poll() is not None  # ended
    return helper


def test_the_split_walk_yields_what_the_serial_walk_yields(tree):
    assert both_ways(tree).outcome == "helped"


def test_unchanged_folders_are_counted_and_a_change_in_the_helpers_part_is_found(tree):
    signatures = recorded(tree)
    picture(tree / "d" / "p1.jpg", b"changed, and longer than before")
    serial_left = dict(signatures)
    items = list(Scan(tree, signatures=serial_left).listings())
    assert [i.folder for i in items if i.found is not None] == [str(tree / "d")]
    assert both_ways(tree, signatures).outcome == "helped"


def test_a_removed_folder_in_the_helpers_part_is_left_over(tree):
    signatures = recorded(tree)
    for name in os.listdir(tree / "d" / "deeper"):
        os.unlink(tree / "d" / "deeper" / name)
    os.rmdir(tree / "d" / "deeper")
    left = dict(signatures)
    assert both_ways(tree, signatures).outcome == "helped"
    list(Scan(tree, signatures=left).listings())
    assert list(left) == [str(tree / "d" / "deeper")]


def test_a_hard_link_across_the_cut_is_taken_once_as_in_the_serial_walk(tree):
    os.link(tree / "a" / "p0.jpg", tree / "d" / "link.jpg")
    helper = both_ways(tree, recorded(tree))
    assert helper.outcome == "walked alone"
    skipped = [s for i in Scan(tree).listings() if type(i) is Listing for s in i.skipped]
    assert any(s.path.endswith("link.jpg") and s.reason == "same-file-seen" for s in skipped)


def test_a_linked_folder_across_the_cut_is_entered_once_as_in_the_serial_walk(tree):
    os.symlink(tree / "a" / "deeper", tree / "d" / "also-a")
    assert both_ways(tree).outcome == "walked alone"


def test_exclude_and_links_out_of_the_tree_are_kept_by_the_helper(tree, tmp_path):
    outside = tmp_path / "outside"
    picture(outside / "far.jpg")
    os.symlink(outside, tree / "d" / "out")
    both_ways(tree, exclude=(str(tree / "c" / "deeper"),))
    assert both_ways(tree, follow_outside=True).outcome == "helped"


def test_a_folder_removed_before_the_helper_lists_it_is_reported_as_serially(tree):
    def walk(helper=None) -> list:
        items = []
        for item in Scan(tree, helper=helper).listings():
            if not items:  # the root is listed: the helper's part (c, d) is not yet handed over
                shutil.rmtree(tree / "d")
            items.append(item)
        picture(tree / "d" / "p0.jpg")
        return items

    serial = walk()
    assert Skipped(str(tree / "d"), "missing") in serial
    helper = WalkHelper.start()
    assert walk(helper) == serial and helper.outcome == "helped"


@pytest.mark.parametrize("fault", ["die", "garbage"])
def test_a_helper_that_dies_or_sends_garbage_is_walked_for(tree, monkeypatch, fault):
    monkeypatch.setenv(scan_helper.FAULT_ENV, fault)
    assert both_ways(tree, recorded(tree)).outcome == "walked alone"


def test_a_hung_helper_is_given_up(tree, monkeypatch):
    monkeypatch.setenv(scan_helper.FAULT_ENV, "hang")
    monkeypatch.setattr(scan_split, "WAIT_MIN", 0.5)
    assert both_ways(tree).outcome == "walked alone"


def test_a_helper_killed_mid_walk_is_walked_for(tree, monkeypatch):
    monkeypatch.setenv(scan_helper.FAULT_ENV, "hang")  # it stays alive after its walk, until killed
    serial = list(Scan(tree).listings())
    helper = WalkHelper.start()
    split = []
    for item in Scan(tree, helper=helper).listings():
        if len(split) == 1:  # the part is handed over when the first folder has been listed
            os.kill(helper.process.pid, signal.SIGKILL)
        split.append(item)
    assert split == serial and helper.outcome == "walked alone"


def test_an_index_run_with_the_helper_matches_one_without(tmp_path, fake_model, monkeypatch):
    photos = tmp_path / "photos"
    for top in ("a", "b", "c"):
        write_scenes(photos / top, 2, start=10 * ord(top))
    started = []
    real_start = WalkHelper.start.__func__

    def counting(cls):
        started.append(real_start(cls))
        return started[-1]

    monkeypatch.setattr(WalkHelper, "start", classmethod(counting))
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        assert lib.index(photos).added == 6
        assert lib.index(photos).unchanged == 6
        write_scenes(photos / "c", 1, start=900)
        os.unlink(next(iter(sorted((photos / "b").iterdir()))))
        report = lib.index(photos)
        assert (report.added, report.removed, report.unchanged) == (1, 1, 5)
    assert started and all(h.outcome == "helped" for h in started[1:])
    monkeypatch.delenv(scan_split.HELPER_ENV)  # a small library walks alone
    started.clear()
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        assert lib.index(photos).unchanged == 6
    assert started == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts runnable tasks in /proc/loadavg")
def test_a_busy_process_is_counted_as_running():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert scan_split.others_running() >= 1
    finally:
        spinner.kill()
        spinner.wait()


def test_a_helper_only_for_a_big_walk_with_a_free_core(monkeypatch):
    monkeypatch.delenv(scan_split.HELPER_ENV)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(scan_split, "others_running", lambda: 2)  # 2 of 4 cores busy
    big = scan_split.MIN_PICTURES
    assert scan_split.worth_a_helper(big) and scan_split.worth_a_helper(big, workers=2)
    assert not scan_split.worth_a_helper(big - 1)
    assert not scan_split.worth_a_helper(big, workers=1) and not scan_split.worth_a_helper(big, workers=0)
    monkeypatch.setattr(scan_split, "others_running", lambda: 3)  # every other core busy
    assert not scan_split.worth_a_helper(big)
    monkeypatch.setenv(scan_split.HELPER_ENV, "on")
    assert scan_split.worth_a_helper(10)


def test_the_helper_imports_no_numpy_pillow_onnxruntime_or_usearch():
    code = ("import sys, imgret.runtime.scan_helper, imgret.runtime.lifeline; "
            "print(sorted(m for m in ('numpy', 'PIL', 'onnxruntime', 'usearch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_parent_leaves_no_helper_behind(tmp_path):
    code = ("import sys, time\nfrom imgret.runtime.scan_split import WalkHelper\n"
            "if __name__ == '__main__':\n"
            "    h = WalkHelper.start(); print(h.process.pid, flush=True); time.sleep(60)\n")
    script = tmp_path / "parent.py"
    script.write_text(code)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert os.path.exists(f"/proc/{child}")
        time.sleep(0.5)  # the helper's guards are in place once it runs
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
