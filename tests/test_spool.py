"""The packed, spilling list of files an index run reads (imgret.runtime.spool)."""

from __future__ import annotations

import os

import pytest
from fakes import write_scenes

from imgret.runtime import spool
from imgret.runtime.library import Library
from imgret.runtime.scan import Found
from imgret.runtime.spool import FoundList


def _found(i: int) -> Found:
    # Odd names on purpose: bytes that are not UTF-8, a newline, a long path.
    name = os.fsdecode(b"/photos/caf\xe9-\xff/" + b"x" * (i % 300) + f"/{i}\n.jpg".encode())
    return Found(name, i * 1000 + 7, 1_700_000_000_123_456_789 + i, (66305 + i % 3, 2**40 + i))


@pytest.mark.parametrize("spill_bytes", [1 << 30, 1, 5_000])
def test_records_come_back_exactly_in_memory_spilled_or_across_the_spill_point(spill_bytes):
    items = [_found(i) for i in range(700)]
    with FoundList(items, spill_bytes=spill_bytes) as found:
        assert len(found) == 700
        assert list(found) == items
        assert found.found(0) == items[0] and found.found(699) == items[699] and found.found(350) == items[350]
        if spill_bytes < 1 << 30:
            assert found._file is not None and len(found._buffer) < max(spill_bytes, 1 << 12)
        else:
            assert found._file is None


def test_paths_are_a_sequence_with_slices_steps_and_bounds():
    items = [_found(i) for i in range(257)]
    paths = [f.path for f in items]
    found = FoundList(items, spill_bytes=2_000)
    view = found.paths
    assert len(view) == 257 and list(view) == paths
    assert view[0] == paths[0] and view[-1] == paths[-1] and view[100] == paths[100]
    assert view[10:74] == paths[10:74] and view[250:400] == paths[250:400] and view[5:5] == []
    assert view[::16] == paths[::16] and view[3:200:7] == paths[3:200:7]
    with pytest.raises(IndexError):
        view[257]
    found.close()
    assert len(found) == 0 and list(found) == [] and found._file is None


def test_a_large_run_keeps_its_list_of_files_on_disk_not_in_memory():
    found = FoundList(spill_bytes=64 << 10)
    for i in range(20_000):
        found.append(_found(i))
    # ~3 MB of records: all but the last partial block are in the temporary file.
    assert found._file is not None and len(found._buffer) < 64 << 10
    assert os.fstat(found._file.fileno()).st_size + len(found._buffer) == found._end > 2_000_000
    assert found.found(19_999) == _found(19_999)
    found.close()


def test_an_index_run_with_a_spilled_list_of_files_stores_every_picture(tmp_path, fake_model, monkeypatch):
    monkeypatch.setattr(spool, "SPILL_BYTES", 200)  # a few records per block: the run reads from disk
    photos = tmp_path / "p"
    write_scenes(photos, 24)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        report = lib.index(photos, workers=0)
        assert report.added == 24 and len(lib) == 24
        stored = {os.path.basename(row.path) for row in lib.catalogue.rows("ok")}
    assert stored == {f"scene{i:03d}.png" for i in range(24)}
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        assert lib.index(photos, workers=0).unchanged == 24



def test_without_pread_a_spilled_list_is_read_by_seek_and_read(monkeypatch):
    """Windows has no os.pread: the spilled records are read by a seek and a read instead."""
    monkeypatch.delattr(os, "pread")
    items = [_found(i) for i in range(300)]
    with FoundList(items, spill_bytes=1_000) as found:
        assert found._file is not None
        assert list(found) == items and found.paths[10:20] == [f.path for f in items[10:20]]
