"""Files replaced atomically (imgret.runtime.atomic) keep the permissions a user expects."""

from __future__ import annotations

import os
import stat

import pytest

from imgret.runtime import atomic

pytestmark = pytest.mark.skipif(not hasattr(os, "fchmod"), reason="no POSIX permissions here")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_file_gets_the_umask_default_not_owner_only(tmp_path):
    old = os.umask(0o027)
    try:
        atomic._UMASK.clear()  # read again under the umask set here
        atomic.write_bytes(tmp_path / "montage.jpg", b"x")
    finally:
        os.umask(old)
        atomic._UMASK.clear()
    assert _mode(tmp_path / "montage.jpg") == 0o640  # 0666 & ~027; mkstemp alone gives 0600


def test_a_replaced_file_keeps_its_own_permissions(tmp_path):
    target = tmp_path / "vectors.usearch"
    target.write_bytes(b"old")
    os.chmod(target, 0o604)
    atomic.write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o604
    with atomic.replacing_path(target) as tmp:  # the path form, as usearch's save uses it
        with open(tmp, "wb") as fh:
            fh.write(b"newer")
    assert target.read_bytes() == b"newer" and _mode(target) == 0o604
