"""Property tests: path bytes, preprocessing of any image array, and a model of a library's life.

The stateful test drives a real library (in process, fake encoder) through random sequences of adding,
modifying, deleting and renaming pictures, indexing and querying, and checks after every step that the
library holds exactly the paths of the last index run, each with the vector of its content.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from fakes import make_thumbnail_model, scene
from harness import ok_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from imgret.runtime import imageio
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.encoder import Encoder
from imgret.runtime.library import Library

name_bytes = st.binary(min_size=1, max_size=120).filter(lambda b: b"\0" not in b and b"/" not in b
                                                        and b not in (b".", b".."))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(name_bytes, min_size=1, max_size=5, unique=True))
def test_any_path_bytes_round_trip_through_the_catalogue(tmp_path, names):
    db = tmp_path / f"c{abs(hash(tuple(names)))}.sqlite"
    cat = Catalogue(str(db))
    try:
        paths = [os.fsdecode(b"/photos/" + n) for n in names]
        keys = [cat.put_ok(p, 1, 2, "ab" * 32, np.ones(4, np.float32)) for p in paths]
        cat.commit()
        for p, key in zip(paths, keys):
            row = cat.lookup(p)
            assert row is not None and row.key == key and os.fsencode(row.path) == os.fsencode(p)
        assert [os.fsencode(r.path) for r in cat.rows()] == [os.fsencode(p) for p in paths]
        assert {k: os.fsencode(v) for k, v in cat.paths(keys).items()} == dict(zip(keys, map(os.fsencode, paths)))
    finally:
        cat.close()
        db.unlink()


image_dtypes = st.sampled_from([np.uint8, np.float32, np.float64])
image_shapes = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 3, 4])).map(
    lambda t: t[:2] if t[2] is None else t)


@st.composite
def image_arrays(draw):
    dtype = draw(image_dtypes)
    shape = draw(image_shapes)
    if dtype == np.uint8:
        elements = st.integers(0, 255)
    else:
        elements = st.floats(allow_nan=True, allow_infinity=True, width=32 if dtype == np.float32 else 64)
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=50, deadline=None)
@given(arr=image_arrays(), size=st.sampled_from([8, 32, 33]))
def test_preprocessing_accepts_any_image_array(arr, size):
    out = imageio.preprocess(arr, size)
    assert out.dtype == np.uint8 and out.shape == (size, size, 3)


@settings(max_examples=25, deadline=None)
@given(arr=hnp.arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.just(3))))
def test_preprocessing_an_rgb_array_matches_preprocessing_its_png(arr):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    assert np.array_equal(imageio.preprocess(arr, 16), imageio.preprocess(buf.getvalue(), 16))


SEEDS = st.integers(0, 7)  # few contents, so duplicates by content happen often
_SHARED: dict = {}


def _model_and_vectors() -> tuple[Path, dict[int, bytes]]:
    """One fake model for every example (built on first use, removed at exit) and each seed's vector."""
    if not _SHARED:
        folder = Path(tempfile.mkdtemp(prefix="imgret-prop-model-"))
        atexit.register(shutil.rmtree, folder, True)
        model = make_thumbnail_model(folder / "thumb.onnx")
        enc = Encoder(model)
        _SHARED["model"] = model
        _SHARED["vectors"] = {s: enc.embed([np.asarray(scene(s))])[0].tobytes() for s in range(8)}
    return _SHARED["model"], _SHARED["vectors"]


class LibraryLife(RuleBasedStateMachine):
    """Files on disk (name -> content seed) and the library's view after the last index."""

    names = Bundle("names")

    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="imgret-prop-"))
        self.folder = self.base / "photos"
        self.folder.mkdir()
        model, self.vectors = _model_and_vectors()
        self.lib = Library.open_writable(self.base / "lib", model=model)
        self.disk: dict[str, int] = {}
        self.indexed: dict[str, int] = {}
        self.counter = 0
        self.tick = 1_000_000_000_000_000_000

    def _write(self, name: str, seed: int) -> None:
        path = self.folder / name
        scene(seed).save(path, format="PNG")
        self.tick += 1_000_000_000  # a fresh mtime, as a real edit would have
        os.utime(path, ns=(self.tick, self.tick))
        self.disk[name] = seed

    @rule(target=names, seed=SEEDS)
    def add(self, seed):
        self.counter += 1
        name = f"pic{self.counter:03d}.png"
        self._write(name, seed)
        return name

    @rule(name=names, seed=SEEDS)
    def modify(self, name, seed):
        if name in self.disk:
            self._write(name, seed)

    @rule(name=consumes(names))
    def delete(self, name):
        if name in self.disk:
            (self.folder / name).unlink()
            del self.disk[name]

    @rule(target=names, name=consumes(names))
    def rename(self, name):
        self.counter += 1
        new = f"moved{self.counter:03d}.png"
        if name in self.disk:
            os.rename(self.folder / name, self.folder / new)
            self.disk[new] = self.disk.pop(name)
        return new

    @rule()
    def index(self):
        report = self.lib.index(self.folder, workers=0)
        assert report.skipped_count == 0
        self.indexed = dict(self.disk)

    @rule(seed=SEEDS)
    def query(self, seed):
        # One row per file (fold=False): this machine checks storage, and identical files it makes
        # would otherwise fold into one hit (folding has its own tests in tests/test_dups_cli.py).
        hits = self.lib.query([np.asarray(scene(seed))], 3, fold=False)[0].hits
        assert len(hits) == min(3, len(self.indexed))
        if seed in self.indexed.values():
            assert hits[0].distance < 1e-5
            assert self.indexed[os.path.basename(hits[0].path)] == seed

    @invariant()
    def library_matches_the_last_index(self):
        got = {os.path.basename(os.fsdecode(p)): v for p, v in ok_vectors(self.base / "lib").items()}
        assert got == {name: self.vectors[seed] for name, seed in self.indexed.items()}

    def teardown(self):
        self.lib.close()
        shutil.rmtree(self.base, ignore_errors=True)


LibraryLife.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_library_life = LibraryLife.TestCase
