"""An index run with nothing changed costs a walk: a folder whose pictures give the signature recorded
for it is not compared, no catalogue row is read, and the model is not loaded (its fingerprint is
still compared). The cases around the signatures are in test_folder_signatures.py."""

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
from imgret.runtime.scan import Found, Scan


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


def test_the_walk_signs_each_folder_and_passes_over_those_whose_signature_matches(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "other").mkdir()
    _touch(tmp_path / "a.jpg", b"aaa", 10**18)
    _touch(tmp_path / "b.JPG", b"bbb", 10**18)
    _touch(tmp_path / "sub" / "c.png", b"ccc", 10**18)
    _touch(tmp_path / "other" / "d.png", b"ddd", 10**18)
    _touch(tmp_path / "notes.txt", b"", 10**18)
    os.link(tmp_path / "a.jpg", tmp_path / "sub" / "hard.jpg")  # the same file again
    os.symlink(tmp_path / "other" / "d.png", tmp_path / "link.png")  # through a link: the slow path
    root = str(tmp_path)
    first = {i.folder: i for i in Scan(root).listings()}
    assert sorted(first) == [root, f"{root}/other", f"{root}/sub"]
    assert [f.path for f in first[root].found] == [f"{root}/a.jpg", f"{root}/b.JPG", f"{root}/link.png"]
    assert [(s.path, s.reason) for s in first[root].skipped] == [(f"{root}/notes.txt", ".txt")]
    assert first[root].subfolders == ["other", "sub"]
    assert first[root].signature is not None  # a file of another suffix does not matter
    assert first[f"{root}/sub"].signature is None  # a picture passed over (a hard link): never trusted
    assert {(s.path, s.reason) for s in first[f"{root}/other"].skipped} == {(f"{root}/other/d.png", "same-file-seen")}

    stored = {f: i.signature for f, i in first.items()} | {f"{root}/gone": b"x" * 16}
    _touch(tmp_path / "b.JPG", b"BBB", 10**18)  # same size, same mtime, same inode: the same (the rule)
    walk = Scan(root, signatures=stored)
    again = {i.folder: i for i in walk.listings()}
    assert again[root].found is None and again[root].unchanged == 3 and walk.unchanged == 3
    assert [s.path for s in again[root].skipped] == [f"{root}/notes.txt"]  # still seen, still counted
    assert [f.path for f in again[f"{root}/sub"].found] == [f"{root}/sub/c.png"]  # unsigned: compared
    assert list(stored) == [f"{root}/gone"]  # what the walk did not find

    os.utime(tmp_path / "a.jpg", ns=(10**18, 10**18 + 1))  # an edit of the same size: mtime moved
    moved = {i.folder: i for i in Scan(root, signatures={f: i.signature for f, i in first.items()}).listings()}
    assert [f.path for f in moved[root].found] == [f"{root}/a.jpg", f"{root}/b.JPG", f"{root}/link.png"]
    assert sorted(i.path for i in Scan(root) if type(i) is Found) == [
        f"{root}/a.jpg", f"{root}/b.JPG", f"{root}/link.png", f"{root}/sub/c.png"]


def test_known_in_gives_the_rows_directly_in_a_folder_by_their_exact_paths(tmp_path):
    root = tmp_path / "pics"
    weird = os.fsdecode(b"caf\xe9-\xff.jpg")  # not UTF-8: survives as the OS's own bytes
    cat = Catalogue(str(tmp_path / "catalogue.sqlite"))
    cat.add_root(str(root))
    ok = {str(root / "a.jpg"): 11, str(root / "d" / weird): 12, str(root / "d" / "e" / "f.png"): 13,
          str(root / "dd.png"): 14, str(root / "d-x" / "g.png"): 15, str(root / "d" / "z.png"): 16}
    for path, size in ok.items():
        cat.put_ok(path, size, 100, bytes(32), [1.0, 0.0])
    cat.put_skipped(str(root / "d" / "bad.jpg"), 5, 100, "not-decodable")
    cat.commit()
    pictures, skipped = cat.known_in(str(root), ["d", "d-x"])
    assert {p: row[1] for p, row in pictures.items()} == {str(root / "a.jpg"): 11, str(root / "dd.png"): 14}
    assert skipped == {}
    pictures, skipped = cat.known_in(str(root / "d"), ["e"])  # a folder inside the root; "e" jumped over
    assert sorted(pictures) == sorted([str(root / "d" / weird), str(root / "d" / "z.png")])
    assert {p: (row[1], row[4]) for p, row in skipped.items()} == {str(root / "d" / "bad.jpg"): (5, "not-decodable")}
    assert sorted(cat.known_in(str(root / "d"))[0]) == sorted(pictures)  # deeper rows never come back
    assert sorted(cat.folder_signatures(str(root))) == sorted(str(root / d) for d in ("", "d", "d/e", "d-x"))
    assert set(cat.folder_signatures(str(root / "d")).values()) == {None}  # written rows unsign their folder
    cat.close()


def _touch(path, data: bytes, mtime_ns: int) -> os.stat_result:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path.stat()
