"""A deterministic corpus of nasty inputs, each with the outcome imgret must produce.

:func:`build` writes the corpus into a folder and returns one :class:`Case` per thing the indexer will
meet. ``expect`` is ``"indexed"`` (an ``ok`` row with a vector) or ``"skipped"`` with the ``reason``
that the ``index --verbose`` summary must list it under. ``like`` (optional) is a picture the file must
preprocess to exactly (``exact``) or, for lossy files, embed nearest to among its eight mirror/rotation
variants.

Everything is generated from fixed seeds, so the corpus is the same on every run and small (about a
megabyte). Cases that need a non-root user (unreadable files and folders) are made by
:func:`build_unreadable` and tested separately.
"""

from __future__ import annotations

import io
import os
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

INDEXED = "indexed"
SKIPPED = "skipped"

# What Image.transpose method undoes EXIF orientation N (the value a camera writes).
ORIENTATION_FIX = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# The inverse of each fix: what a camera stored for a given upright picture.
ORIENTATION_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Case:
    """One entry of the corpus: its path relative to the corpus root (OS bytes) and what must happen."""

    name: bytes
    expect: str
    reason: str | None = None
    like: Image.Image | None = None
    exact: bool = True
    note: str = ""

    @property
    def text(self) -> str:
        return os.fsdecode(self.name)


# -- tiny picture makers -----------------------------------------------------------------------------

def picture(seed: int, width: int = 48, height: int = 40) -> Image.Image:
    """An asymmetric, blocky RGB picture (so every mirror or rotation of it is different)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 5, 3)).astype(np.uint8)
    img = Image.fromarray(blocks, "RGB").resize((width, height), Image.Resampling.NEAREST)
    arr = np.asarray(img).copy()
    arr[: height // 4, : width // 4] = (255, 0, 0)  # a red corner marks "top left"
    return Image.fromarray(arr, "RGB")


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def raw_png(width: int, height: int, depth: int, colour: int, pixels: bytes | None, extra: bytes = b"") -> bytes:
    """A PNG written by hand, for what Pillow will not write (16-bit RGB) or must not (lies)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    data = zlib.compress(pixels) if pixels is not None else zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def png16_rgb(img: Image.Image, alpha: bool = False) -> bytes:
    """16-bit-per-channel RGB(A) PNG of ``img`` (each 8-bit value v stored as v * 257)."""
    arr = np.asarray(img.convert("RGB")).astype(">u2") * 257
    if alpha:
        a = np.full(arr.shape[:2] + (1,), 65535, dtype=">u2")
        arr = np.concatenate([arr, a], axis=2)
    rows = b"".join(b"\0" + arr[y].tobytes() for y in range(arr.shape[0]))
    return raw_png(img.width, img.height, 16, 6 if alpha else 2, rows)


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is patched to claim ``width`` x ``height``."""
    data = bytearray(encoded(picture(1, 16, 16), "JPEG", quality=80))
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("P", (4, 4), 0), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)  # logical screen
    i = data.index(b"\x2c")  # image descriptor
    struct.pack_into("<HH", data, i + 5, width, height)
    return bytes(data)


def bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("RGB", (4, 4)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hello")
    return buf.getvalue()


EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 10 10
%%EndComments
newpath 0 0 moveto 10 10 lineto stroke
showpage
%%EOF
"""
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"


# -- the corpus ----------------------------------------------------------------------------------------

class _Corpus:
    """The corpus being written: its root, the cases so far and the base picture's encodings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: list[Case] = []
        self.good = picture(100)
        self.good_jpeg = encoded(self.good, "JPEG", quality=92)
        self.good_png = encoded(self.good, "PNG")

    def put(self, name: str | bytes, data: bytes, expect: str, reason: str | None = None, **kw) -> None:
        rel = os.fsencode(name)
        path = os.path.join(os.fsencode(self.root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        self.cases.append(Case(rel, expect, reason, **kw))


def build(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (created) and return its cases, in no particular order."""
    root.mkdir(parents=True, exist_ok=True)
    w = _Corpus(root)
    for part in (_not_pictures, _bombs, _odd_pictures, _exif, _misnamed, _odd_names, _duplicates, _folder_named_like_a_picture, _special_files):
        part(w)
    return w.cases


def _not_pictures(w: _Corpus) -> None:
    """Not pictures at all, or not any more."""
    w.put("bad/empty.jpg", b"", SKIPPED, "empty")
    w.put("bad/truncated.jpg", w.good_jpeg[: len(w.good_jpeg) // 2], SKIPPED, "corrupt")
    w.put("bad/truncated.png", w.good_png[: len(w.good_png) // 2], SKIPPED, "corrupt")
    w.put("bad/header-only.png", w.good_png[:33], SKIPPED, "not-an-image")
    garbage_idat = raw_png(8, 8, 8, 2, None).replace(zlib.compress(b"\0" * 64), b"x" * 20)
    w.put("bad/bad-zlib.png", _fix_png_crcs(garbage_idat), SKIPPED, "corrupt")
    w.put("bad/random.jpg", np.random.default_rng(7).bytes(4096), SKIPPED, "not-an-image")
    w.put("bad/page.jpg", HTML, SKIPPED, "not-an-image")
    w.put("bad/archive.png", zip_bytes(), SKIPPED, "not-an-image")
    w.put("bad/document.jpg", PDF, SKIPPED, "not-an-image")
    w.put("bad/vector.png", SVG, SKIPPED, "not-an-image")
    w.put("bad/postscript.jpg", EPS, SKIPPED, "not-an-image", note="must never start Ghostscript")
    w.put("bad/postscript.tif", b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(EPS), 0, 0, 0, 0) + b"\xff\xff" + EPS,
        SKIPPED, "not-an-image", note="DOS EPS binary header")
    w.put("bad/zero-width.png", raw_png(0, 10, 8, 2, b""), SKIPPED, "not-an-image")


def _bombs(w: _Corpus) -> None:
    """Decompression bombs and headers that lie about their size."""
    w.put("bomb/bomb-50000.png", raw_png(50000, 50000, 1, 0, None), SKIPPED, "too-many-pixels")
    w.put("bomb/just-over-cap.png", raw_png(9000, 9000, 8, 0, None), SKIPPED, "too-many-pixels")
    w.put("bomb/huge.jpg", jpeg_with_size(65000, 65000), SKIPPED, "too-many-pixels")
    w.put("bomb/huge.gif", gif_with_size(65535, 65535), SKIPPED, "too-many-pixels")
    w.put("bomb/huge.bmp", bmp_with_size(100000, 100000), SKIPPED, "too-many-pixels")


def _odd_pictures(w: _Corpus) -> None:
    """Unusual but valid pictures: all indexed."""
    w.put("odd/strip-1x20000.png", encoded(picture(2, 1, 20000), "PNG"), INDEXED)
    w.put("odd/strip-20000x1.png", encoded(picture(3, 20000, 1), "PNG"), INDEXED)
    w.put("odd/cmyk.jpg", encoded(w.good.convert("CMYK"), "JPEG", quality=92), INDEXED)
    w.put("odd/one-bit.png", encoded(w.good.convert("1"), "PNG"), INDEXED, like=w.good.convert("1").convert("RGB"))
    grey = w.good.convert("L")
    grey16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).convert("I;16")
    w.put("odd/grey16.png", encoded(grey16, "PNG"), INDEXED, like=grey.convert("RGB"))
    w.put("odd/rgb16.png", png16_rgb(w.good), INDEXED, like=w.good)
    w.put("odd/rgba16.png", png16_rgb(w.good, alpha=True), INDEXED, like=w.good)
    pal = w.good.quantize(16)
    w.put("odd/palette-transparent.png", encoded(pal, "PNG", transparency=0), INDEXED)
    w.put("odd/palette-transparent.gif", encoded(pal, "GIF", transparency=0), INDEXED)
    w.put("odd/rgba.png", encoded(w.good.convert("RGBA"), "PNG"), INDEXED, like=w.good)
    w.put("odd/cap-sized.bmp", encoded(picture(4, 200, 100), "BMP"), INDEXED, like=picture(4, 200, 100))

    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    w.put("odd/animated.gif", gif.getvalue(), INDEXED, like=frames[0], note="first frame")
    webp = io.BytesIO()
    frames[0].save(webp, format="WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=True)
    w.put("odd/animated.webp", webp.getvalue(), INDEXED, like=frames[0], note="first frame")
    tiff = io.BytesIO()
    frames[1].save(tiff, format="TIFF", save_all=True, append_images=[frames[0], frames[2]])
    w.put("odd/multipage.tif", tiff.getvalue(), INDEXED, like=frames[1], note="first page")
    many = io.BytesIO()
    tiny = [Image.new("P", (2, 2), i % 2) for i in range(3000)]
    tiny[0].save(many, format="GIF", save_all=True, append_images=tiny[1:], duration=10)
    w.put("odd/3000-frames.gif", many.getvalue(), INDEXED)


def _exif(w: _Corpus) -> None:
    """EXIF orientation: every stored variant must come out like the upright picture."""
    upright = picture(200, 48, 32)
    for o in range(1, 9):
        store = ORIENTATION_STORE[o]
        stored = upright.transpose(store) if store is not None else upright
        w.put(f"exif/orient-{o}.png", encoded(stored, "PNG", exif=exif_bytes(o)), INDEXED, like=upright)
        w.put(f"exif/orient-{o}.jpg", encoded(stored, "JPEG", quality=95, exif=exif_bytes(o)), INDEXED,
            like=upright, exact=False)
    bad_exif = bytearray(encoded(w.good, "JPEG", quality=92, exif=b"Exif\0\0II*\0" + b"\xff" * 40))
    w.put("exif/malformed-exif.jpg", bytes(bad_exif), INDEXED, like=w.good, exact=False)
    w.put("exif/orientation-9.jpg", encoded(w.good, "JPEG", quality=92, exif=exif_bytes(9)), INDEXED,
        like=w.good, exact=False)
    w.put("exif/orientation-0.png", encoded(w.good, "PNG", exif=exif_bytes(0)), INDEXED, like=w.good)
    icc = np.random.default_rng(9).bytes(600_000)
    w.put("exif/huge-icc.jpg", encoded(w.good, "JPEG", quality=92, icc_profile=icc), INDEXED, like=w.good, exact=False)
    w.put("exif/huge-icc.png", encoded(w.good, "PNG", icc_profile=b"\0" * 4_000_000), INDEXED, like=w.good)


def _misnamed(w: _Corpus) -> None:
    """Misnamed and padded files."""
    w.put("named/png-named.jpg", w.good_png, INDEXED, like=w.good)
    w.put("named/trailing-garbage.jpg", w.good_jpeg + b"\0GARBAGE" * 500, INDEXED)
    w.put("named/UPPER.PNG", encoded(picture(5), "PNG"), INDEXED)
    w.put("named/jpeg-named.gif", encoded(picture(6), "JPEG"), INDEXED)


def _odd_names(w: _Corpus) -> None:
    """Odd names, each a different picture."""
    names = [
        unicodedata.normalize("NFC", "café.png"),
        unicodedata.normalize("NFD", "café.png"),
        "\U0001f4f7\U0001f305.png",
        "new\nline.png",
        "tab\tname.png",
        "\x1b[31mred\x1b[0m.png",
        "-rf.png",
        "--help.png",
        " leading and trailing space .png",
        "quote'\"back\\slash*?.png",
        b"latin1-caf\xe9-\xff.png",
        "a" * 251 + ".png",
        "é" * 125 + "b.png",
    ]
    for i, name in enumerate(names):
        raw = os.fsencode(name)
        assert len(raw) <= 255, name
        w.put(b"names/" + raw, encoded(picture(300 + i), "PNG"), INDEXED, like=picture(300 + i))


def _duplicates(w: _Corpus) -> None:
    """Duplicates by content are each indexed (and share a vector); links to one file count once."""
    dup = encoded(picture(400), "PNG")
    w.put("dups/dup-a.png", dup, INDEXED)
    w.put("dups/dup-b.png", dup, INDEXED)
    w.put("dups/hl-1.png", encoded(picture(401), "PNG"), INDEXED)
    os.link(w.root / "dups/hl-1.png", w.root / "dups/hl-2.png")
    w.cases.append(Case(b"dups/hl-2.png", SKIPPED, "same-file-seen", note="hard link"))
    os.symlink("hl-1.png", w.root / "dups/link-to-hl-1.png")
    w.cases.append(Case(b"dups/link-to-hl-1.png", SKIPPED, "same-file-seen", note="symlink in tree"))


def _folder_named_like_a_picture(w: _Corpus) -> None:
    """A folder named like a picture is still a folder."""
    w.put("album.jpg/inside.png", encoded(picture(402), "PNG"), INDEXED)


def _special_files(w: _Corpus) -> None:
    """Links and special files: never hang, never follow out of the tree."""
    special = w.root / "special"
    special.mkdir()
    os.symlink("no-such-file.jpg", special / "broken.jpg")
    w.cases.append(Case(b"special/broken.jpg", SKIPPED, "broken-symlink"))
    os.symlink("loop-b.jpg", special / "loop-a.jpg")
    os.symlink("loop-a.jpg", special / "loop-b.jpg")
    w.cases.append(Case(b"special/loop-a.jpg", SKIPPED, "symlink-loop"))
    w.cases.append(Case(b"special/loop-b.jpg", SKIPPED, "symlink-loop"))
    os.symlink("self.jpg", special / "self.jpg")
    w.cases.append(Case(b"special/self.jpg", SKIPPED, "symlink-loop"))
    os.symlink("..", special / "up")
    w.cases.append(Case(b"special/up", SKIPPED, "symlink-loop", note="folder loop"))
    os.mkfifo(special / "pipe.jpg")
    w.cases.append(Case(b"special/pipe.jpg", SKIPPED, "not-a-file", note="a reader would block forever"))
    os.symlink("/dev/zero", special / "zero.jpg")
    w.cases.append(Case(b"special/zero.jpg", SKIPPED, "symlink-outside-tree", note="endless bytes"))


def build_unreadable(root: Path) -> list[Case]:
    """Files and folders only root could read; meaningful only when indexed by another user."""
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    picture(500).save(root / "readable.png")
    cases.append(Case(b"readable.png", INDEXED))
    picture(501).save(root / "secret.png")
    os.chmod(root / "secret.png", 0)
    cases.append(Case(b"secret.png", SKIPPED, "permission-denied"))
    (root / "locked").mkdir()
    picture(502).save(root / "locked" / "inner.png")
    os.chmod(root / "locked", 0)
    cases.append(Case(b"locked", SKIPPED, "permission-denied"))
    return cases


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so a test of broken pixel data is not caught as a CRC error."""
    out = bytearray(data[:8])
    i = 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        body = data[i + 8:i + 8 + length]
        out += png_chunk(kind, body)
        i += 12 + length
    return bytes(out)
