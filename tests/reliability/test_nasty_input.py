"""Hostile and odd files: each readable picture is indexed, everything else skipped with a reason.

The corpus (``corpus.py``) is indexed by the real CLI in a child process, into a library that already
holds another folder, with a fake Ghostscript first on PATH. The run must finish (no hang on pipes or
devices), exit 0 without a traceback, list every skip with its reason, embed odd pictures like their
upright/8-bit originals, and leave the library's earlier rows byte for byte as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import corpus
import numpy as np
import pytest
from fakes import write_scenes
from harness import child_env, run_imgret, skipped_in_summary, snapshot
from PIL import Image

from imgret.cli.output import printable
from imgret.runtime.encoder import Encoder

FAKE_GS = """#!/bin/sh
touch "{marker}"
exit 0
"""


def _fake_programs(folder: Path, marker: Path) -> str:
    """A bin folder whose gs/gsc/convert/magick leave ``marker`` behind if anything ever runs them."""
    folder.mkdir()
    for name in ("gs", "gsc", "gswin64c", "convert", "magick", "ffmpeg", "dcraw"):
        p = folder / name
        p.write_text(FAKE_GS.format(marker=marker))
        p.chmod(0o755)
    return str(folder) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="module")
def nasty_run(tmp_path_factory, fake_model):
    """Index a good folder, then the corpus into the same library; return everything the tests check."""
    base = tmp_path_factory.mktemp("nasty")
    good = base / "good"
    write_scenes(good, 6)
    lib = base / "lib"
    first = run_imgret("index", good, "--library", lib, "--model", fake_model, "--workers", "0")
    assert first.code == 0, first.stderr
    before = snapshot(lib)
    nasty = base / "nasty"
    cases = corpus.build(nasty)
    marker = base / "external-program-ran"
    env = child_env(PATH=_fake_programs(base / "bin", marker))
    # Over 64 files, so the spawned decoding workers are used, as in a real run.
    run = run_imgret("index", nasty, "--library", lib, "--verbose", "--workers", "2", env=env, timeout=90)
    return {"lib": lib, "good": good, "nasty": nasty, "cases": cases, "before": before, "run": run,
            "marker": marker, "after": snapshot(lib)}


def test_run_finishes_cleanly_and_starts_no_external_program(nasty_run):
    run = nasty_run["run"]
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "Warning" not in run.stderr  # Pillow's warnings about broken EXIF are not printed
    assert not nasty_run["marker"].exists(), "an external program (Ghostscript?) was started"


def test_every_readable_picture_is_indexed(nasty_run):
    after, nasty = nasty_run["after"], nasty_run["nasty"]
    indexed = [c for c in nasty_run["cases"] if c.expect == corpus.INDEXED]
    missing = [c.text for c in indexed if after.get(os.path.join(os.fsencode(nasty), c.name), (0,) * 6)[3] != "ok"]
    assert missing == []
    assert f"{len(indexed)} added" in nasty_run["run"].stderr


def test_every_other_file_is_skipped_with_its_reason(nasty_run):
    nasty = nasty_run["nasty"]
    listed = skipped_in_summary(nasty_run["run"].stderr)
    want = {printable(os.fsdecode(os.path.join(os.fsencode(nasty), c.name))): c.reason
            for c in nasty_run["cases"] if c.expect == corpus.SKIPPED}
    assert {p: listed.get(p) for p in want} == want
    assert set(listed) == set(want)  # nothing readable was skipped
    after = nasty_run["after"]
    for c in nasty_run["cases"]:
        if c.expect == corpus.SKIPPED:
            row = after.get(os.path.join(os.fsencode(nasty), c.name))
            assert row is None or row[3] == "skipped", c.text


def test_the_library_that_was_there_is_untouched(nasty_run):
    before, after = nasty_run["before"], nasty_run["after"]
    assert before and all(after[p] == row for p, row in before.items())


def test_duplicates_share_a_vector_and_odd_pictures_embed_like_their_originals(nasty_run, fake_model):
    after, nasty = nasty_run["after"], os.fsencode(nasty_run["nasty"])
    assert after[nasty + b"/dups/dup-a.png"][5] == after[nasty + b"/dups/dup-b.png"][5]
    assert "reused by content" in nasty_run["run"].stderr
    enc = Encoder(fake_model)
    for case in nasty_run["cases"]:
        if case.like is None:
            continue
        got = np.frombuffer(after[os.path.join(nasty, case.name)][5], dtype=np.float32)
        if case.exact:
            np.testing.assert_allclose(got, enc.embed([case.like])[0], atol=1e-6, err_msg=case.text)
        else:  # lossy JPEG: nearest to the upright picture among all eight mirrors/rotations of it
            variants = [case.like] + [case.like.transpose(t) for t in Image.Transpose]
            dists = [float(np.linalg.norm(got - v)) for v in enc.embed(variants)]
            assert int(np.argmin(dists)) == 0, (case.text, dists)


def test_a_second_run_changes_nothing(nasty_run):
    run = run_imgret("index", nasty_run["nasty"], "--library", nasty_run["lib"], "--workers", "0")
    assert run.code == 0, run.stderr
    assert " 0 added, 0 updated, 0 removed" in run.stderr
    assert snapshot(nasty_run["lib"]) == nasty_run["after"]


def test_pipes_and_devices_never_hang_even_when_links_are_followed(tmp_path, fake_model):
    folder = tmp_path / "special"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.symlink("/dev/urandom", folder / "random.png")
    write_scenes(folder, 1)
    lib = tmp_path / "lib"
    run = run_imgret("index", folder, "--library", lib, "--model", fake_model, "--follow-links", "--verbose", timeout=30)
    assert run.code == 0, run.stderr
    listed = skipped_in_summary(run.stderr)
    assert {os.path.basename(p): r for p, r in listed.items()} == {
        "pipe.jpg": "not-a-file", "zero.jpg": "not-a-file", "random.png": "not-a-file"}
    for query in ("pipe.jpg", "zero.jpg"):
        q = run_imgret("query", folder / query, "--library", lib, timeout=30)
        assert q.code == 1 and "cannot read query picture" in q.stderr and "Traceback" not in q.stderr


def _without_root_powers() -> list[str] | None:
    """A command prefix under which permission bits apply to us, or ``None`` when there is none.

    Root reads everything, so as root the child runs through ``setpriv`` without the capabilities that
    bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): for files root owns, that is what
    any ordinary user meets.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    probe = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search", "true"], capture_output=True)
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if probe.returncode == 0 else None


@pytest.mark.skipif(_without_root_powers() is None, reason="running as root without a usable setpriv")
def test_unreadable_files_and_folders_are_skipped_and_kept(tmp_path, fake_model):
    """Unreadable files and folders are skipped with permission-denied, and earlier rows are not forgotten."""
    prefix = _without_root_powers()
    photos, lib = tmp_path / "photos", tmp_path / "lib"
    cases = corpus.build_unreadable(photos)

    def index(*args):
        cmd = [*prefix, sys.executable, "-m", "imgret", "index", str(photos), "--library", str(lib), "--workers", "0",
               *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=child_env(), stdin=subprocess.DEVNULL)
        return out.returncode, out.stderr

    try:
        # First let the folder be read, so its picture is in the library ...
        os.chmod(photos / "locked", 0o755)
        code, err = index("--model", str(fake_model))
        assert code == 0, err
        assert snapshot(lib)[os.fsencode(photos / "locked" / "inner.png")][3] == "ok"
        # ... then lock it: its picture must be reported and kept, not removed as vanished.
        os.chmod(photos / "locked", 0)
        code, err = index("--verbose")
        assert code == 0, err
        assert "Traceback" not in err
        want = {str(photos / os.fsdecode(c.name)): c.reason for c in cases if c.expect == corpus.SKIPPED}
        assert skipped_in_summary(err) == want
        rows = snapshot(lib)
        assert rows[os.fsencode(photos / "readable.png")][3] == "ok"
        assert rows[os.fsencode(photos / "locked" / "inner.png")][3] == "ok"
        assert os.fsencode(photos / "secret.png") not in rows or rows[os.fsencode(photos / "secret.png")][3] != "ok"
    finally:
        os.chmod(photos / "locked", 0o755)
