"""A full disk during ``index``: one clear line, exit 1, and the library as it was committed.

The child runs with RLIMIT_FSIZE set low and SIGXFSZ ignored, so a write past the limit fails with
EFBIG, as a full disk fails with ENOSPC. Saving the index file is made to fail with ENOSPC in process.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from fakes import scene, write_scenes
from harness import child_env, ok_vectors, run_imgret, run_imgret_with_file_limit, snapshot

from imgret.runtime.library import Library


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("full")
    write_scenes(base / "first", 12)
    write_scenes(base / "more", 300, start=100)
    return base


@pytest.mark.parametrize("limit", [40_000, 120_000, 200_000])
def test_disk_full_while_indexing_keeps_the_library_and_says_so(folders, tmp_path, fake_model, limit):
    lib = tmp_path / "lib"
    first = run_imgret("index", folders / "first", "--library", lib, "--model", fake_model, "--workers", "0")
    assert first.code == 0, first.stderr
    before = snapshot(lib)
    full = run_imgret_with_file_limit("index", folders / "more", "--library", lib, "--workers", "0", limit=limit)
    assert full.code == 1, full.stderr
    assert "Traceback" not in full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgret: error:") and "free some space" in lines[0]
    after = snapshot(lib)
    assert all(after[p] == row for p, row in before.items())  # the earlier library is intact
    with Library.open(lib) as reader:  # ... and usable
        assert len(reader.query([np.asarray(scene(3))], 3)[0].hits) == 3
    again = run_imgret("index", folders / "more", "--library", lib, "--workers", "0", env=child_env())
    assert again.code == 0, again.stderr
    assert len(ok_vectors(lib)) == 312


def test_disk_full_while_saving_the_index_file(imgret, tmp_path, fake_model, monkeypatch):
    photos = tmp_path / "photos"
    write_scenes(photos, 8)
    lib = tmp_path / "lib"
    assert imgret("index", photos, "--library", lib, "--model", fake_model).code == 0
    write_scenes(photos, 4, start=50)
    real_fsync = os.fsync

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)  # what the atomic writer calls
    r = imgret("index", photos, "--library", lib)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert r.code == 1
    assert r.stderr.count("\n") == 1 and "no space left" in r.stderr and "free some space" in r.stderr
    assert not [n for n in os.listdir(lib) if n.endswith(".tmp")]
    with Library.open(lib) as reader:  # the catalogue was committed; the stale index file is not searched
        assert len(reader) == 12 and reader.info()["index_fresh"] is False
        assert len(reader.query([np.asarray(scene(51))], 12)[0].hits) == 12
    assert imgret("index", photos, "--library", lib).code == 0
    with Library.open(lib) as reader:
        assert reader.info()["index_fresh"] is True
