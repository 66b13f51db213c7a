"""Walking a folder tree for pictures.

Recursive and deterministic (sorted by name); hidden files and folders and AppleDouble ``._*`` files
are skipped; symbolic links are followed inside the tree, out of it only when ``follow_outside`` is
true, and never in loops; each real file (device, inode) is yielded once, so hard links and links
to a file already seen are not embedded twice. Things that look like pictures but cannot be read are
reported as :class:`Skipped` with a reason instead of raising. Which files are pictures is decided by
the name's suffix (:func:`imgret.runtime.imageio.has_image_suffix`); the format itself is then read
from the content. Files with other suffixes are reported as :class:`NotAPicture`, so that a summary can
say how many were passed over and why.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from operator import attrgetter
from stat import S_ISREG
from typing import NamedTuple

from imgret.runtime.imageio import IMAGE_SUFFIXES, has_image_suffix


class Found(NamedTuple):
    """A regular file with a picture suffix. A named tuple, not a dataclass: a walk makes one per
    picture, and a tuple is made about three times faster."""

    path: str
    size: int
    mtime_ns: int
    inode: tuple[int, int]


@dataclass(frozen=True)
class Skipped:
    """Something the scan passed over, with a short reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class NotAPicture(Skipped):
    """A file whose name has no picture suffix, passed over without being opened (suffix, not
    content, decides which files are read). ``reason`` is its suffix in lower case (``.txt``), or
    ``(no suffix)``, so a summary can count them by suffix."""


def suffix_label(name: str) -> str:
    """``.txt`` for ``notes.TXT``; ``(no suffix)`` for ``README``."""
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix else "(no suffix)"


_BY_NAME = attrgetter("name")  # the sort key of a folder's entries, faster than a lambda


def scan(
    root: str | os.PathLike, *, follow_outside: bool = False, exclude: tuple[str, ...] = ()
) -> Iterator[Found | Skipped]:
    """Yield :class:`Found` pictures and :class:`Skipped` entries below ``root`` (a folder or a file).

    ``exclude`` lists absolute real paths of folders never to enter (the library folder itself, for
    example, when it lives inside the photo folder).
    """
    return iter(Scan(root, follow_outside=follow_outside, exclude=exclude))


class Scan:
    """One walk of ``root`` (see :func:`scan`); iterate it once.

    With ``known`` (absolute path -> ``(anything, size, mtime_ns, ...)``, what a catalogue recorded) the walk
    also detects changes, which is what makes an index run with nothing changed cost little more than
    the walk: a picture whose size and mtime match its entry is taken out of ``known``, counted in
    :attr:`unchanged` and not yielded. A picture that differs is taken out and yielded; what is left
    in ``known`` afterwards was not found as a picture (vanished, or now a link or folder).
    """

    def __init__(self, root: str | os.PathLike, *, follow_outside: bool = False, exclude: tuple[str, ...] = (),
                 known: dict[str, tuple] | None = None) -> None:
        self.root, self.follow_outside, self.exclude = os.fspath(root), follow_outside, exclude
        self.known = known if known is not None else {}
        self.unchanged = 0

    def __iter__(self) -> Iterator[Found | Skipped]:
        root = self.root
        try:
            st = os.stat(root)
        except OSError as exc:
            yield Skipped(root, _reason(exc))
            return
        if not stat.S_ISREG(st.st_mode):
            walk = _Walk(root, st, self.follow_outside, self.exclude, self.known)
            yield from walk.run()
            self.unchanged = walk.unchanged
        elif not has_image_suffix(root):
            yield NotAPicture(root, suffix_label(root))
        elif not _same(self.known.pop(root, None), st):
            yield Found(root, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino))
        else:
            self.unchanged = 1


def _same(old: tuple | None, st: os.stat_result) -> bool:
    """Whether a catalogue entry ``(anything, size, mtime_ns, ...)`` still describes a file (the change rule)."""
    return old is not None and old[1] == st.st_size and old[2] == st.st_mtime_ns


class _Walk:
    """One depth-first walk of a folder tree, remembering the folders and files already seen."""

    def __init__(self, root: str, st: os.stat_result, follow_outside: bool, exclude: tuple[str, ...],
                 known: dict[str, tuple]) -> None:
        self.root, self.real_root, self.follow_outside = root, os.path.realpath(root), follow_outside
        self.excluded = {os.path.realpath(p) for p in exclude}
        self.seen_dirs: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
        # Files seen, by inode: a plain int on the root's device (cheaper than a tuple, and not
        # tracked by the garbage collector), (device, inode) elsewhere. See _file_key.
        self.dev, self.seen_files = st.st_dev, set()
        self.known, self.unchanged = known, 0

    def run(self) -> Iterator[Found | Skipped]:
        stack = [self.root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=_BY_NAME)
            except OSError as exc:
                yield Skipped(folder, _reason(exc))
                continue
            subdirs: list[str] = []
            yield from self._listing(entries, subdirs)
            stack.extend(reversed(subdirs))

    def _listing(self, entries: list[os.DirEntry], subdirs: list[str]) -> Iterator[Found | Skipped]:
        """One folder's pictures and skips in name order; its folders to enter go to ``subdirs``.

        Regular files (not links, which the folder listing itself says: no system call) take the
        fast path, written out inline because it runs once per file: the name decides,
        a picture costs one ``stat``, and an unchanged one a dictionary look-up. Links and folders go
        through :meth:`_visit`."""
        seen, pop, unchanged, suffixes, dev = self.seen_files, self.known.pop, 0, IMAGE_SUFFIXES, self.dev
        for entry in entries:
            name = entry.name
            if name[0] == ".":  # hidden by Unix convention; also macOS ``._*`` AppleDouble files
                continue
            try:
                plain = entry.is_file(follow_symlinks=False)  # a regular file, not a link: no system call
            except OSError:
                plain = False
            if not plain:
                outcome = self._visit(entry)
                if isinstance(outcome, str):
                    subdirs.append(outcome)
                elif outcome is not None and not self._unchanged(outcome):
                    yield outcome
                continue
            dot = name.rfind(".")  # is_picture_name, inlined: a hidden name never gets here
            if dot < 0 or name[dot:].lower() not in suffixes:
                yield NotAPicture(entry.path, suffix_label(name))
                continue
            try:
                # os.stat, not entry.stat(): the same one system call, but entry.stat() keeps each
                # result alive in its entry until the whole folder is done (measured ~20% slower).
                st = os.stat(entry.path)
            except OSError as exc:
                yield Skipped(entry.path, _reason(exc))
                continue
            key = st.st_ino if st.st_dev == dev else (st.st_dev, st.st_ino)  # _file_key, inlined
            if not S_ISREG(st.st_mode):
                yield Skipped(entry.path, "not-a-file")
            elif key in seen:
                yield Skipped(entry.path, "same-file-seen")
            else:
                seen.add(key)
                old = pop(entry.path, None)
                if old is not None and old[1] == st.st_size and old[2] == st.st_mtime_ns:  # _same, inlined
                    unchanged += 1
                else:
                    yield Found(entry.path, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino))
        self.unchanged += unchanged

    def _file_key(self, st: os.stat_result) -> int | tuple[int, int]:
        return st.st_ino if st.st_dev == self.dev else (st.st_dev, st.st_ino)

    def _unchanged(self, outcome: Found | Skipped) -> bool:
        """The change rule for a picture reached through a link (the slow path)."""
        if type(outcome) is not Found:
            return False
        old = self.known.pop(outcome.path, None)
        if old is not None and old[1] == outcome.size and old[2] == outcome.mtime_ns:
            self.unchanged += 1
            return True
        return False

    def _visit(self, entry: os.DirEntry) -> Found | Skipped | str | None:
        """A picture, a skip (a :class:`NotAPicture` for another suffix), a folder to enter (its path) or
        ``None`` (an excluded folder)."""
        path = entry.path
        try:
            is_link = entry.is_symlink()
            if is_link and not self.follow_outside and not self._inside(os.path.realpath(path)):
                return Skipped(path, "symlink-outside-tree")
            st = os.stat(path)  # follows the link, if any
        except FileNotFoundError:
            return Skipped(path, "broken-symlink")
        except OSError as exc:
            return Skipped(path, _reason(exc))
        key = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(st.st_mode):
            return self._folder(path, key, is_link)
        if not has_image_suffix(entry.name):
            return NotAPicture(path, suffix_label(entry.name))
        if not stat.S_ISREG(st.st_mode):
            return Skipped(path, "not-a-file")
        file_key = self._file_key(st)
        if file_key in self.seen_files:
            return Skipped(path, "same-file-seen")
        self.seen_files.add(file_key)
        return Found(path, st.st_size, st.st_mtime_ns, key)

    def _inside(self, target: str) -> bool:
        return target == self.real_root or target.startswith(self.real_root + os.sep)

    def _folder(self, path: str, key: tuple[int, int], is_link: bool) -> Skipped | str | None:
        if os.path.realpath(path) in self.excluded:
            return None
        if key in self.seen_dirs:
            return Skipped(path, "symlink-loop" if is_link else "folder-seen-twice")
        self.seen_dirs.add(key)
        return path


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission-denied"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if exc.errno == 40:  # ELOOP
        return "symlink-loop"
    return "unreadable"


def image_files(root: str | os.PathLike) -> list[str]:
    """All picture paths below ``root`` in scan order; what training uses to list its data."""
    return [item.path for item in scan(root) if isinstance(item, Found)]
