"""Readers and writers at once: queries keep answering while ``index`` writes; a second writer is refused.

A child ``imgret index`` adds several hundred small pictures, committing every few files and saving the
index file at the end, while this process queries the same library again and again.
"""

from __future__ import annotations

import time

import numpy as np
from fakes import scene, write_scenes
from harness import child_env, meta, snapshot, start_imgret

from imgret.runtime.library import Library


def test_queries_answer_from_committed_state_while_index_runs_and_a_second_writer_is_refused(
        imgret, tmp_path, fake_model):
    first, more, lib = tmp_path / "first", tmp_path / "more", tmp_path / "lib"
    write_scenes(first, 10)
    write_scenes(more, 600, start=1000)
    assert imgret("index", first, "--library", lib, "--model", fake_model).code == 0
    start_gen = int(meta(lib)["catalogue_generation"])
    known = {str(p) for p in first.iterdir()} | {str(p) for p in more.iterdir()}

    child = start_imgret("index", more, "--library", lib, "--workers", "0", env=child_env(IMGRET_COMMIT_EVERY="10"))
    try:
        while int(meta(lib)["catalogue_generation"]) == start_gen:  # wait until it has committed a batch
            assert child.poll() is None, child.communicate()[1].decode()
            time.sleep(0.01)
        second = imgret("index", first, "--library", lib)
        assert second.code == 1 and "locked" in second.stderr and second.stderr.count("\n") == 1
        # Refused while the writer is still at work: the second writer did not wait for the lock.
        assert child.poll() is None, "the first writer finished before the second was refused"

        answered = during = 0
        sizes = []
        while True:
            running = child.poll() is None
            with Library.open(lib) as reader:
                size = len(reader)
                result = reader.query([np.asarray(scene(3))], 5)[0]
            hits = result.hits
            assert len(hits) == 5
            assert hits[0].path.endswith("scene003.png") and hits[0].distance < 1e-5
            assert {h.path for h in hits} <= known
            assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
            sizes.append(size)
            answered += 1
            during += running
            if not running:
                break
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert during >= 3, "the index run ended before the queries could overlap it"
    assert sizes == sorted(sizes) and sizes[-1] == 610  # each reader saw a committed state, never less
    # Readers saw the writer's work arrive batch by batch: some committed state between start and end,
    # and only whole batches of ten (the child commits every ten files).
    partial = [s for s in sizes if 10 < s < 610]
    assert partial, "no reader saw a state committed in the middle of the run"
    assert all((s - 10) % 10 == 0 for s in partial)
    rows = snapshot(lib)
    assert sum(r[3] == "ok" for r in rows.values()) == 610
