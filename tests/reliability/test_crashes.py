"""Crashes: ``index`` killed with SIGKILL at seeded moments and at each named commit point.

The seeded moments are counted in the indexer's own work, not in wall-clock time: the child kills
itself after the N-th batch commit (``IMGRET_FAULT_AFTER_COMMITS``), optionally M files further into
the next, uncommitted batch (``IMGRET_FAULT_AFTER_STORED``), or at a named point. The same seed
therefore replays the same kills on any machine.

After every kill the library must open and answer queries, nothing committed before the kill may be
lost or altered, every stored vector must be the right one for its file's content, and a plain rerun
must converge to exactly the library a clean run builds (same paths, same vectors byte for byte).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
from fakes import scene
from harness import child_env, meta, ok_vectors, run_imgret, snapshot, vector_file

from imgret.errors import LibraryError
from imgret.runtime import vectors
from imgret.runtime.encoder import Encoder
from imgret.runtime.library import Library

SEED = 20250605
KILLS = 25
COMMIT_EVERY = "3"  # so the batch commit points are crossed several times per run
FAULT_POINTS = ["before-batch-commit", "after-batch-commit", "before-final-commit", "after-final-commit",
                "after-index-save"]


class Photos:
    """A folder of scene pictures that the test adds to, modifies, renames and deletes, by seed."""

    def __init__(self, folder: Path, first_seed: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.next_seed = first_seed
        self.content: dict[str, bytes] = {}  # sha256 -> file bytes, for every version ever written

    def write(self, name: str, seed: int | None = None) -> None:
        if seed is None:
            seed, self.next_seed = self.next_seed, self.next_seed + 1
        path = self.folder / name
        existed = path.exists()
        scene(seed).save(path, format="PNG")
        if existed:  # a rewrite within one mtime tick must still be seen as a change
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        data = path.read_bytes()
        self.content[hashlib.sha256(data).hexdigest()] = data

    def names(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())

    def mutate(self, rng: random.Random, adds: int = 8) -> None:
        for _ in range(adds):
            self.write(f"p{self.next_seed:04d}.png")
        names = self.names()
        self.write(rng.choice(names))  # modified in place
        victim = rng.choice(names)
        (self.folder / victim).unlink()
        names.remove(victim)
        old = rng.choice(names)
        os.rename(self.folder / old, self.folder / ("r" + old))


def clean_build(folder: Path, libdir: Path, model: Path) -> None:
    with Library.open_writable(libdir, model=model) as lib:
        lib.index(folder, workers=0)


def assert_converged(libdir: Path, folder: Path, model: Path, clean_dir: Path) -> None:
    """``libdir`` holds exactly what a clean index of ``folder`` builds, and its index file is sound."""
    clean_build(folder, clean_dir, model)
    got, want = snapshot(libdir), snapshot(clean_dir)
    assert set(got) == set(want)
    assert {p: r[2:] for p, r in got.items()} == {p: r[2:] for p, r in want.items()}  # sha, status, vector
    m = meta(libdir)
    assert m["index_generation"] == m["catalogue_generation"]
    saved = vectors.SavedIndex(int(m["index_count"]), m["index_sha256"], int(m["index_size"]), m["index_sample"])
    vectors.verify(str(vector_file(libdir, m)), saved, full=True)
    assert saved.count == len(ok_vectors(libdir))
    vector_files = [p for p in os.listdir(libdir) if p.endswith(".usearch")]
    assert vector_files == [m["index_file"]], "old vector files left behind"
    assert not [p for p in os.listdir(libdir) if p.endswith(".tmp")], "temporary files left behind"


def assert_sound_after_kill(libdir: Path, before: dict, photos: Photos, encoder: Encoder, refs: dict) -> None:
    """The invariants that must hold right after a kill, whatever moment it hit."""
    after = snapshot(libdir)
    # Nothing committed before is lost: rows of files untouched since are still there, unchanged.
    for path, row in before.items():
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # deleted since: may be gone or not yet removed
        if (st.st_size, st.st_mtime_ns) == row[:2]:
            assert after.get(path) == row, os.fsdecode(path)
    # Every stored vector is the vector of the content it was stored for.
    for row in after.values():
        if row[3] != "ok":
            continue
        sha = row[2]
        if sha not in refs:
            refs[sha] = encoder.embed([photos.content[sha]])[0]
        np.testing.assert_allclose(np.frombuffer(row[5], dtype=np.float32), refs[sha], atol=1e-6)
    # The library opens and answers (or, killed before its model was recorded, says so clearly).
    try:
        lib = Library.open(libdir)
    except LibraryError as exc:
        assert not [r for r in after.values() if r[3] == "ok"], exc
        return
    with lib:
        hits = lib.query([np.asarray(scene(0))], 3)[0].hits
        assert len(hits) == min(3, len(lib))


def seeded_kill(rng: random.Random) -> dict[str, str]:
    """Where one run dies: mostly inside the batches (after a commit, or files into the next one),
    sometimes at a named point around the final commit and the vector file's save."""
    if rng.random() < 0.2:
        return {"IMGRET_FAULT_POINT": rng.choice(FAULT_POINTS[2:])}
    kill = {"IMGRET_FAULT_AFTER_COMMITS": str(rng.randint(0, 2))}
    stored = rng.randint(0, int(COMMIT_EVERY) - 1)
    if kill["IMGRET_FAULT_AFTER_COMMITS"] == "0":
        stored = max(stored, 1)  # N=0 needs M>0: nothing else happens before the first commit
    kill["IMGRET_FAULT_AFTER_STORED"] = str(stored)
    return kill


def test_seeded_sigkills_never_lose_work_and_a_rerun_converges(tmp_path, fake_model):
    rng = random.Random(SEED)
    encoder = Encoder(fake_model)
    refs: dict[str, np.ndarray] = {}
    sets = [Photos(tmp_path / f"photos{j}", 1000 * j) for j in range(5)]
    libs = [tmp_path / f"lib{j}" for j in range(5)]
    for photos in sets:
        for _ in range(6):
            photos.write(f"p{photos.next_seed:04d}.png")
    kills = attempts = 0
    while kills < KILLS:
        attempts += 1
        assert attempts <= 2 * KILLS, f"only {kills} of {attempts} runs reached their kill point"
        j = attempts % len(sets)
        photos, libdir = sets[j], libs[j]
        photos.mutate(rng)
        before = snapshot(libdir)
        args = ["index", photos.folder, "--library", libdir, "--workers", "0"]
        if not (libdir / "catalogue.sqlite").exists() or "model_fingerprint" not in _meta_or_empty(libdir):
            args += ["--model", fake_model]
        run = run_imgret(*args, env=child_env(IMGRET_COMMIT_EVERY=COMMIT_EVERY, **seeded_kill(rng)))
        assert "Traceback" not in run.stderr, run.stderr
        if run.code == -signal.SIGKILL:
            kills += 1
        else:  # the run had fewer batches than the chosen kill point: it must have finished cleanly
            assert run.code == 0, run.stderr
        assert_sound_after_kill(libdir, before, photos, encoder, refs)

    for j, (photos, libdir) in enumerate(zip(sets, libs)):
        args = ["index", photos.folder, "--library", libdir, "--workers", "0"]
        if "model_fingerprint" not in _meta_or_empty(libdir):
            args += ["--model", fake_model]
        done = run_imgret(*args, env=child_env(IMGRET_COMMIT_EVERY=COMMIT_EVERY))
        assert done.code == 0, done.stderr
        assert_converged(libdir, photos.folder, fake_model, tmp_path / f"clean{j}")


def _meta_or_empty(libdir: Path) -> dict[str, str]:
    try:
        return meta(libdir)
    except Exception:
        return {}


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_at_each_commit_point_keeps_committed_work_and_a_rerun_converges(tmp_path, fake_model, point):
    photos = Photos(tmp_path / "photos", 0)
    for _ in range(6):
        photos.write(f"p{photos.next_seed:04d}.png")
    libdir = tmp_path / "lib"
    clean_build(photos.folder, libdir, fake_model)
    before = snapshot(libdir)
    for _ in range(8):
        photos.write(f"p{photos.next_seed:04d}.png")  # p0006 .. p0013: eight new pictures
    photos.write("p0000.png", seed=500)  # one modified
    (photos.folder / "p0001.png").unlink()  # one deleted

    env = child_env(IMGRET_COMMIT_EVERY=COMMIT_EVERY, IMGRET_FAULT_POINT=point)
    killed = run_imgret("index", photos.folder, "--library", libdir, "--workers", "0", env=env)
    assert killed.code == -signal.SIGKILL, killed.stderr
    assert "Traceback" not in killed.stderr
    assert_sound_after_kill(libdir, before, photos, Encoder(fake_model), {})

    after = snapshot(libdir)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    todo = 9  # eight new files and one modified file, committed three at a time
    expected_changes = {
        "before-batch-commit": 0,  # the first batch was never committed
        "after-batch-commit": 3,  # exactly the first batch
        "before-final-commit": todo // 3 * 3,  # every full batch; the deletion is not yet committed
        "after-final-commit": todo + 1,  # everything, deletion included; only the index file is stale
        "after-index-save": todo + 1,
    }[point]
    assert len(changed) == expected_changes
    with Library.open(libdir) as lib:
        assert lib.info()["index_fresh"] is (point in ("before-batch-commit", "after-index-save"))

    rerun = run_imgret("index", photos.folder, "--library", libdir, "--workers", "0",
                       env=child_env(IMGRET_COMMIT_EVERY=COMMIT_EVERY))
    assert rerun.code == 0, rerun.stderr
    assert_converged(libdir, photos.folder, fake_model, tmp_path / "clean")
