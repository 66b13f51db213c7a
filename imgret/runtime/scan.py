"""Walking a folder tree for pictures.

Recursive and deterministic (sorted by name); hidden files and folders and AppleDouble ``._*`` files
are skipped; symbolic links are followed inside the tree, out of it only when ``follow_outside`` is
true, and never in loops; each real file (device, inode) is yielded once, so hard links and links
to a file already seen are not embedded twice. Things that look like pictures but cannot be read are
reported as :class:`Skipped` with a reason instead of raising. Which files are pictures is decided by
the name's suffix (:func:`imgret.runtime.imageio.has_image_suffix`); the format itself is then read
from the content. Files with other suffixes are reported as :class:`NotAPicture`, so that a summary can
say how many were passed over and why.

An index run walks with :meth:`Scan.listings`: one :class:`Listing` per folder, with a signature of
its pictures (:func:`signature_of`), so that a folder whose signature matches the one recorded for
it needs no further look (see ``indexer.py``).
"""

from __future__ import annotations

import marshal
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import blake2b
from operator import attrgetter
from typing import NamedTuple

# Light on purpose: the walk helper process (scan_helper.py) imports this module, and it must not
# import numpy or Pillow, as imgret.runtime.imageio does; the picture suffixes are passed in.


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


_BY_NAME, _BY_PATH = attrgetter("name"), attrgetter("path")  # sort keys, faster than lambdas


def _cased_suffixes(suffixes: frozenset[str]) -> tuple[set[str], set[str]]:
    """The picture suffixes of 4 and of 5 characters, in lower and in upper case: most names end in
    one as they are, which spares finding the dot and a ``lower()`` per file (other names take that way)."""
    return tuple({c for s in suffixes if len(s) == n for c in (s, s.upper())} for n in (4, 5))


def _picture_name(name: str, suffixes: frozenset[str]) -> bool:
    """:func:`imgret.runtime.imageio.is_picture_name` for a name that is not hidden (the walk passes
    hidden names over before it asks)."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in suffixes


def picture_suffixes() -> frozenset[str]:
    """The suffixes a walk takes for pictures (imported here, not at the top: see above)."""
    from imgret.runtime.imageio import IMAGE_SUFFIXES

    return frozenset(IMAGE_SUFFIXES)


def scan(
    root: str | os.PathLike, *, follow_outside: bool = False, exclude: tuple[str, ...] = ()
) -> Iterator[Found | Skipped]:
    """Yield :class:`Found` pictures and :class:`Skipped` entries below ``root`` (a folder or a file).

    ``exclude`` lists absolute real paths of folders never to enter (the library folder itself, for
    example, when it lives inside the photo folder).
    """
    return iter(Scan(root, follow_outside=follow_outside, exclude=exclude))


class Listing(NamedTuple):
    """One folder as a walk saw it: its pictures, what it passed over, and its signature.

    ``signature`` digests the folder's pictures (name, size, mtime, inode, in name order); ``None``
    when a picture-named entry could not be taken (a link out of the tree, a file seen before...),
    so that the folder is never trusted by its signature alone. When the signature matched the one
    given to :class:`Scan`, ``found`` is ``None`` and ``unchanged`` counts the pictures instead."""

    folder: str
    found: list[Found] | None
    skipped: list[Skipped]
    signature: bytes | None
    unchanged: int
    subfolders: list[str]  # names of the folders inside it that the walk enters


def signature_of(parts: list[tuple]) -> bytes:
    """A folder's signature: a 16-byte BLAKE2b of its pictures' ``(name, size, mtime_ns, inode)`` in
    the order the folder lists them, serialised by ``marshal`` version 2 (made in C, a third of
    ``repr``'s cost; version 2 writes neither back-references nor interning marks, so equal lists
    give equal bytes in every process). Python's ``hash()`` is salted per process, so it cannot
    be stored."""
    return blake2b(marshal.dumps(parts, 2), digest_size=16).digest()


class Scan:
    """One walk of ``root`` (see :func:`scan`); iterate it once, or call :meth:`listings` once.

    With ``signatures`` (absolute folder path -> the signature stored when the catalogue last matched
    that folder) a folder whose pictures give the same signature is not looked at further: its
    pictures are counted in :attr:`unchanged`, and each folder listed is taken out of
    ``signatures``, which is left holding the folders not found this time.

    With ``helper`` (a started :class:`~imgret.runtime.scan_split.WalkHelper`) a big tree is walked
    in two processes (see :mod:`imgret.runtime.scan_split`); what is yielded is the same, in the same
    order. The walk closes the helper when it is done with it.
    """

    def __init__(self, root: str | os.PathLike, *, follow_outside: bool = False, exclude: tuple[str, ...] = (),
                 signatures: dict[str, bytes | None] | None = None, helper=None) -> None:
        self.root, self.follow_outside, self.exclude = os.fspath(root), follow_outside, exclude
        self.signatures = signatures if signatures is not None else {}
        self.helper = helper
        self.unchanged = 0

    def __iter__(self) -> Iterator[Found | Skipped]:
        for item in self.listings():
            if type(item) is Listing:
                yield from item.found or ()
                yield from item.skipped
            else:
                yield item

    def listings(self) -> Iterator[Listing | Found | Skipped]:
        """Each folder as a :class:`Listing` (a folder that could not be listed as a :class:`Skipped`);
        a ``root`` that is a file gives one :class:`Found` or :class:`Skipped`."""
        root = self.root
        try:
            st = os.stat(root)
        except OSError as exc:
            yield Skipped(root, _reason(exc))
            return
        if stat.S_ISREG(st.st_mode):
            from imgret.runtime.imageio import has_image_suffix

            if has_image_suffix(root):
                yield Found(root, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino))
            else:
                yield NotAPicture(root, suffix_label(root))
            return
        walk = _Walk(root, st, self.follow_outside, self.exclude, self.signatures, picture_suffixes())
        items = walk.run([root]) if self.helper is None else self.helper.split(walk)
        for item in items:
            self.unchanged += item.unchanged if type(item) is Listing else 0
            yield item


class _Walk:
    """One depth-first walk of a folder tree, remembering the folders and files already seen."""

    def __init__(self, root: str, st: os.stat_result, follow_outside: bool, exclude: tuple[str, ...],  # noqa: PLR0913
                 signatures: dict[str, bytes | None], suffixes: frozenset[str]) -> None:
        self.root, self.real_root, self.follow_outside = root, os.path.realpath(root), follow_outside
        self.excluded = {os.path.realpath(p) for p in exclude}
        self.seen_dirs: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
        # Files seen, by inode: a plain int on the root's device (cheaper than a tuple, and not
        # tracked by the garbage collector), (device, inode) elsewhere. See _file_key.
        self.dev, self.seen_files = st.st_dev, set()
        self.signatures = signatures
        self.suffixes, self.cased_suffixes = suffixes, _cased_suffixes(suffixes)

    def run(self, stack: list[str]) -> Iterator[Listing | Skipped]:
        """Walk the folders of ``stack`` (the next one last) and all below them, depth first; the
        stack is worked on in place, so a caller may stop between items and hand part of it on."""
        step = self.step
        while stack:
            yield step(stack)

    def step(self, stack: list[str]) -> Listing | Skipped:
        """List the next folder of ``stack`` and put the folders it holds on it, in order."""
        item = self.folder(stack.pop())
        if type(item) is Listing:
            folder = item.folder
            stack.extend(os.path.join(folder, name) for name in reversed(item.subfolders))
        return item

    def folder(self, folder: str) -> Listing | Skipped:
        """One folder: its :class:`Listing`, its signature compared with (and taken out of) the
        recorded ones; a :class:`Skipped` when it cannot be listed."""
        try:
            # First in the order the folder lists them: sorting every folder costs a tenth of a
            # no-change run, and an unchanged folder lists in the same order each time. Only a
            # folder where order decides (links, a file seen twice: the first by name wins) is
            # gone through again by name. What a walk hands on is sorted by name.
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            return Skipped(folder, _reason(exc))
        parts: list[tuple] = []
        skipped: list[Skipped] = []
        subdirs: list[str] = []
        dir_fd = _open_folder(folder)
        try:
            trusted = self._listing(entries, parts, skipped, subdirs, dir_fd, quick=True)
            if trusted is None:
                entries.sort(key=_BY_NAME)
                trusted = self._listing(entries, parts, skipped, subdirs, dir_fd)
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        signature = signature_of(parts) if trusted else None
        subdirs.sort()
        if len(skipped) > 1:
            skipped.sort(key=_BY_PATH)
        recorded = self.signatures.pop(folder, None)
        if signature is not None and recorded == signature:
            return Listing(folder, None, skipped, signature, len(parts), subdirs)
        return Listing(folder, self._found(folder, parts), skipped, signature, 0, subdirs)

    def _found(self, folder: str, parts: list[tuple]) -> list[Found]:
        """The pictures of a folder whose signature did not match, as :class:`Found`, by name."""
        head, dev = os.path.join(folder, ""), self.dev
        return [Found(head + name, size, mtime_ns, key if type(key) is tuple else (dev, key))
                for name, size, mtime_ns, key in sorted(parts)]

    def _listing(  # noqa: C901, PLR0913 - the per-file loop, inlined on purpose
        self, entries: list[os.DirEntry], parts: list[tuple], skipped: list[Skipped], subdirs: list[str],
        dir_fd: int | None = None, *, quick: bool = False,
    ) -> bool | None:
        """Sort one folder's entries: pictures' ``(name, size, mtime_ns, inode key)`` to ``parts``, what
        it passes over to ``skipped``, folders to enter to ``subdirs``. Returns whether the folder can
        be trusted by its signature (no picture-named entry passed over but for its suffix).

        Regular files (not links: the listing says so, no system call) take the fast path, inline
        as it runs once per file. Links and folders go through :meth:`_visit`. ``quick`` (entries in
        any order): folders are entered after the files, and at the first link or file seen before
        all is undone and ``None`` returned, for a call in name order."""
        seen, add, dev, trusted = self.seen_files, parts.append, self.dev, True
        (short, long), suffixes = self.cased_suffixes, self.suffixes
        see, stat_of = seen.add, os.stat  # bound once: the loop runs once per file
        folders: list[os.DirEntry] = []
        for entry in entries:
            name = entry.name
            if name[0] == ".":  # hidden by Unix convention; also macOS ``._*`` AppleDouble files
                continue
            try:
                plain = entry.is_file(follow_symlinks=False)  # a regular file, not a link: no system call
            except OSError:
                plain = False
            if not plain:
                if not quick:
                    trusted = self._other(entry, parts, skipped, subdirs) and trusted
                elif _is_folder(entry):
                    folders.append(entry)
                else:
                    return self._undo(parts, skipped)
                continue
            if name[-4:] not in short and name[-5:] not in long:  # ".jpg", ".JPEG": a slice and a look-up
                dot = name.rfind(".")  # is_picture_name, inlined: a hidden name never gets here
                if dot < 0 or name[dot:].lower() not in suffixes:
                    skipped.append(NotAPicture(entry.path, suffix_label(name)))
                    continue
            try:
                # os.stat by name in the open folder (the kernel resolves one name, not the path), not
                # entry.stat(), which keeps each result alive until the folder is done (~20% slower).
                st = stat_of(entry.path if dir_fd is None else name, dir_fd=dir_fd)
            except OSError as exc:
                skipped.append(Skipped(entry.path, _reason(exc)))
                trusted = False
                continue
            key = st.st_ino if st.st_dev == dev else (st.st_dev, st.st_ino)  # _file_key, inlined
            if st.st_mode & 0o170000 != 0o100000:  # S_ISREG, inlined: replaced since it was listed
                skipped.append(Skipped(entry.path, "not-a-file"))
                trusted = False
            elif key in seen:
                if quick:
                    return self._undo(parts, skipped)
                skipped.append(Skipped(entry.path, "same-file-seen"))
                trusted = False
            else:
                see(key)
                add((name, st.st_size, st.st_mtime_ns, key))
        for entry in sorted(folders, key=_BY_NAME):
            trusted = self._other(entry, parts, skipped, subdirs) and trusted
        return trusted

    def _other(self, entry: os.DirEntry, parts: list[tuple], skipped: list[Skipped], subdirs: list[str]) -> bool:
        """A folder, link or odd file of a listing (see :meth:`_listing`); whether the folder stays
        trustworthy by its signature after it."""
        outcome = self._visit(entry)
        if isinstance(outcome, str):
            subdirs.append(entry.name)
        elif type(outcome) is Found:
            parts.append((entry.name, outcome.size, outcome.mtime_ns, self._key(outcome.inode)))
        elif outcome is not None:
            skipped.append(outcome)
            return type(outcome) is NotAPicture or not _picture_name(entry.name, self.suffixes)
        return True

    def _undo(self, parts: list[tuple], skipped: list[Skipped]) -> None:
        """Forget a quick pass over a folder (see :meth:`_listing`)."""
        self.seen_files.difference_update(part[3] for part in parts)
        parts.clear()
        skipped.clear()
        return None

    def _key(self, inode: tuple[int, int]) -> int | tuple[int, int]:
        return inode[1] if inode[0] == self.dev else inode

    def _file_key(self, st: os.stat_result) -> int | tuple[int, int]:
        return st.st_ino if st.st_dev == self.dev else (st.st_dev, st.st_ino)

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
        if not _picture_name(entry.name, self.suffixes):
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


def _open_folder(folder: str) -> int | None:
    """A descriptor of ``folder`` to stat its files by name (``None`` where the system cannot, or on
    any error: the files are then stat'ed by path)."""
    if os.stat not in os.supports_dir_fd:
        return None
    try:
        return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


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
