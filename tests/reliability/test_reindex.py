"""An index run with nothing changed costs a walk: the walk itself detects changes, the catalogue's
rows come in one query, and the model is not loaded (its fingerprint is still compared)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fakes import make_thumbnail_model, write_scenes

from imgret.errors import LibraryError, ModelMismatchError
from imgret.runtime import encoder as encoder_module
from imgret.runtime.catalogue import Catalogue
from imgret.runtime.library import Library
from imgret.runtime.scan import Found, NotAPicture, Scan


@pytest.fixture
def sessions(monkeypatch):
    """Counts the onnxruntime sessions opened (each real one is still made)."""
    opened = []
    real = encoder_module.new_session

    def counting(path, **kwargs):
        opened.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(encoder_module, "new_session", counting)
    return opened


def test_a_run_with_nothing_changed_opens_no_onnxruntime_session(tmp_path, fake_model, sessions):
    photos = tmp_path / "photos"
    write_scenes(photos, 5)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    sessions.clear()
    for model in (None, fake_model):  # the library's own model, or the same one named again
        with Library.open_writable(tmp_path / "lib", model=model) as lib:
            report = lib.index(photos)
            assert report.unchanged == 5 and report.added == 0 and not lib.encoder.loaded
    assert sessions == []
    write_scenes(photos, 1, start=40)
    with Library.open_writable(tmp_path / "lib") as lib:
        report = lib.index(photos)
    assert report.added == 1 and report.unchanged == 5 and len(sessions) == 1  # loaded (and probed) once needed


def test_a_no_change_index_process_never_imports_onnxruntime(tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 3)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    code = ("import sys; from imgret.runtime.library import Library\n"
            f"with Library.open_writable({str(tmp_path / 'lib')!r}) as lib: r = lib.index({str(photos)!r})\n"
            "print(r.unchanged, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "False"]


def test_a_writer_still_refuses_a_damaged_model_copy_and_another_model(tmp_path, fake_model):
    photos = tmp_path / "photos"
    write_scenes(photos, 3)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos)
    other = make_thumbnail_model(tmp_path / "other.onnx", model_id="other", grid=2)
    with pytest.raises(ModelMismatchError):
        Library.open_writable(tmp_path / "lib", model=other)
    copy = tmp_path / "lib" / "model.onnx"
    copy.write_bytes(copy.read_bytes()[:-1] + b"x")
    with pytest.raises(LibraryError, match="does not match the fingerprint"):
        Library.open_writable(tmp_path / "lib")


def _touch(path, data: bytes, mtime_ns: int) -> os.stat_result:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path.stat()


def test_the_walk_yields_only_changed_pictures_and_leaves_the_vanished_in_known(tmp_path):
    (tmp_path / "sub").mkdir()
    same = _touch(tmp_path / "a.jpg", b"aaa", 10**18)
    moved = _touch(tmp_path / "b.JPG", b"bbb", 10**18)
    _touch(tmp_path / "sub" / "c.png", b"ccc", 10**18)
    _touch(tmp_path / "notes.txt", b"", 10**18)
    os.link(tmp_path / "a.jpg", tmp_path / "sub" / "hard.jpg")  # the same file again, unchanged or not
    os.symlink(tmp_path / "sub" / "c.png", tmp_path / "link.png")
    root = str(tmp_path)
    known = {
        f"{root}/a.jpg": ("a.jpg", same.st_size, same.st_mtime_ns, 1),
        f"{root}/b.JPG": ("b.JPG", moved.st_size, moved.st_mtime_ns + 1, 2),  # mtime moved
        f"{root}/link.png": ("link.png", 3, 10**18, 3),  # through a link: the slow path, same rule
        f"{root}/gone.jpg": ("gone.jpg", 1, 1, 4),
    }
    walk = Scan(root, known=known)
    items = list(walk)
    found = sorted(i.path for i in items if type(i) is Found)
    assert found == [f"{root}/b.JPG"]  # sub/c.png is the file link.png already gave
    assert walk.unchanged == 2  # a.jpg, link.png
    assert {(i.path, i.reason) for i in items if type(i) is not Found} == {
        (f"{root}/notes.txt", ".txt"), (f"{root}/sub/c.png", "same-file-seen"),
        (f"{root}/sub/hard.jpg", "same-file-seen")}
    assert any(isinstance(i, NotAPicture) for i in items)
    assert list(known) == [f"{root}/gone.jpg"]
    assert sorted(i.path for i in Scan(root) if type(i) is Found) == [f"{root}/a.jpg", f"{root}/b.JPG", f"{root}/link.png"]


def test_known_under_gives_every_row_below_a_folder_by_its_exact_path(tmp_path):
    root = tmp_path / "pics"
    weird = os.fsdecode(b"caf\xe9-\xff.jpg")  # not UTF-8: survives as the OS's own bytes
    cat = Catalogue(str(tmp_path / "catalogue.sqlite"))
    cat.add_root(str(root))
    ok = {str(root / "a.jpg"): 11, str(root / "d" / weird): 12, str(root / "d" / "e" / "f.png"): 13,
          str(root / "dd.png"): 14}
    for path, size in ok.items():
        cat.put_ok(path, size, 100, bytes(32), [1.0, 0.0])
    cat.put_skipped(str(root / "d" / "bad.jpg"), 5, 100, "not-decodable")
    cat.commit()
    pictures, skipped = cat.known_under(str(root))
    assert {p: row[1] for p, row in pictures.items()} == ok
    assert {p: (row[1], row[4]) for p, row in skipped.items()} == {str(root / "d" / "bad.jpg"): (5, "not-decodable")}
    pictures, skipped = cat.known_under(str(root / "d"))  # a folder inside the root: "dd.png" is not in it
    assert sorted(pictures) == sorted([str(root / "d" / weird), str(root / "d" / "e" / "f.png")])
    assert list(skipped) == [str(root / "d" / "bad.jpg")]
    cat.close()
