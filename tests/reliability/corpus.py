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

def build(root: Path) -> list[Case]:
    """Write the corpus under ``root`` (created) and return its cases, in no particular order."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def put(name: str | bytes, data: bytes, expect: str, reason: str | None = None, **kw) -> None:
        rel = os.fsencode(name)
        path = os.path.join(os.fsencode(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        cases.append(Case(rel, expect, reason, **kw))

    good = picture(100)
    good_jpeg = encoded(good, "JPEG", quality=92)
    good_png = encoded(good, "PNG")

    # Not pictures at all, or not any more.
    put("bad/empty.jpg", b"", SKIPPED, "empty")
    put("bad/truncated.jpg", good_jpeg[: len(good_jpeg) // 2], SKIPPED, "corrupt")
    put("bad/truncated.png", good_png[: len(good_png) // 2], SKIPPED, "corrupt")
    put("bad/header-only.png", good_png[:33], SKIPPED, "not-an-image")
    garbage_idat = raw_png(8, 8, 8, 2, None).replace(zlib.compress(b"\0" * 64), b"x" * 20)
    put("bad/bad-zlib.png", _fix_png_crcs(garbage_idat), SKIPPED, "corrupt")
    put("bad/random.jpg", np.random.default_rng(7).bytes(4096), SKIPPED, "not-an-image")
    put("bad/page.jpg", HTML, SKIPPED, "not-an-image")
    put("bad/archive.png", zip_bytes(), SKIPPED, "not-an-image")
    put("bad/document.jpg", PDF, SKIPPED, "not-an-image")
    put("bad/vector.png", SVG, SKIPPED, "not-an-image")
    put("bad/postscript.jpg", EPS, SKIPPED, "not-an-image", note="must never start Ghostscript")
    put("bad/postscript.tif", b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(EPS), 0, 0, 0, 0) + b"\xff\xff" + EPS,
        SKIPPED, "not-an-image", note="DOS EPS binary header")
    put("bad/zero-width.png", raw_png(0, 10, 8, 2, b""), SKIPPED, "not-an-image")

    # Decompression bombs and headers that lie about their size.
    put("bomb/bomb-50000.png", raw_png(50000, 50000, 1, 0, None), SKIPPED, "too-many-pixels")
    put("bomb/just-over-cap.png", raw_png(9000, 9000, 8, 0, None), SKIPPED, "too-many-pixels")
    put("bomb/huge.jpg", jpeg_with_size(65000, 65000), SKIPPED, "too-many-pixels")
    put("bomb/huge.gif", gif_with_size(65535, 65535), SKIPPED, "too-many-pixels")
    put("bomb/huge.bmp", bmp_with_size(100000, 100000), SKIPPED, "too-many-pixels")

    # Unusual but valid pictures: all indexed.
    put("odd/strip-1x20000.png", encoded(picture(2, 1, 20000), "PNG"), INDEXED)
    put("odd/strip-20000x1.png", encoded(picture(3, 20000, 1), "PNG"), INDEXED)
    put("odd/cmyk.jpg", encoded(good.convert("CMYK"), "JPEG", quality=92), INDEXED)
    put("odd/one-bit.png", encoded(good.convert("1"), "PNG"), INDEXED, like=good.convert("1").convert("RGB"))
    grey = good.convert("L")
    grey16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).convert("I;16")
    put("odd/grey16.png", encoded(grey16, "PNG"), INDEXED, like=grey.convert("RGB"))
    put("odd/rgb16.png", png16_rgb(good), INDEXED, like=good)
    put("odd/rgba16.png", png16_rgb(good, alpha=True), INDEXED, like=good)
    pal = good.quantize(16)
    put("odd/palette-transparent.png", encoded(pal, "PNG", transparency=0), INDEXED)
    put("odd/palette-transparent.gif", encoded(pal, "GIF", transparency=0), INDEXED)
    put("odd/rgba.png", encoded(good.convert("RGBA"), "PNG"), INDEXED, like=good)
    put("odd/cap-sized.bmp", encoded(picture(4, 200, 100), "BMP"), INDEXED, like=picture(4, 200, 100))

    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    put("odd/animated.gif", gif.getvalue(), INDEXED, like=frames[0], note="first frame")
    webp = io.BytesIO()
    frames[0].save(webp, format="WEBP", save_all=True, append_images=frames[1:], duration=50, lossless=True)
    put("odd/animated.webp", webp.getvalue(), INDEXED, like=frames[0], note="first frame")
    tiff = io.BytesIO()
    frames[1].save(tiff, format="TIFF", save_all=True, append_images=[frames[0], frames[2]])
    put("odd/multipage.tif", tiff.getvalue(), INDEXED, like=frames[1], note="first page")
    many = io.BytesIO()
    tiny = [Image.new("P", (2, 2), i % 2) for i in range(3000)]
    tiny[0].save(many, format="GIF", save_all=True, append_images=tiny[1:], duration=10)
    put("odd/3000-frames.gif", many.getvalue(), INDEXED)

    # EXIF orientation: every stored variant must come out like the upright picture.
    upright = picture(200, 48, 32)
    for o in range(1, 9):
        store = ORIENTATION_STORE[o]
        stored = upright.transpose(store) if store is not None else upright
        put(f"exif/orient-{o}.png", encoded(stored, "PNG", exif=exif_bytes(o)), INDEXED, like=upright)
        put(f"exif/orient-{o}.jpg", encoded(stored, "JPEG", quality=95, exif=exif_bytes(o)), INDEXED,
            like=upright, exact=False)
    bad_exif = bytearray(encoded(good, "JPEG", quality=92, exif=b"Exif\0\0II*\0" + b"\xff" * 40))
    put("exif/malformed-exif.jpg", bytes(bad_exif), INDEXED, like=good, exact=False)
    put("exif/orientation-9.jpg", encoded(good, "JPEG", quality=92, exif=exif_bytes(9)), INDEXED,
        like=good, exact=False)
    put("exif/orientation-0.png", encoded(good, "PNG", exif=exif_bytes(0)), INDEXED, like=good)
    icc = np.random.default_rng(9).bytes(600_000)
    put("exif/huge-icc.jpg", encoded(good, "JPEG", quality=92, icc_profile=icc), INDEXED, like=good, exact=False)
    put("exif/huge-icc.png", encoded(good, "PNG", icc_profile=b"\0" * 4_000_000), INDEXED, like=good)

    # Misnamed and padded files.
    put("named/png-named.jpg", good_png, INDEXED, like=good)
    put("named/trailing-garbage.jpg", good_jpeg + b"\0GARBAGE" * 500, INDEXED)
    put("named/UPPER.PNG", encoded(picture(5), "PNG"), INDEXED)
    put("named/jpeg-named.gif", encoded(picture(6), "JPEG"), INDEXED)

    # Odd names, each a different picture.
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
        put(b"names/" + raw, encoded(picture(300 + i), "PNG"), INDEXED, like=picture(300 + i))

    # Duplicates by content are each indexed (and share a vector); links to one file count once.
    dup = encoded(picture(400), "PNG")
    put("dups/dup-a.png", dup, INDEXED)
    put("dups/dup-b.png", dup, INDEXED)
    put("dups/hl-1.png", encoded(picture(401), "PNG"), INDEXED)
    os.link(root / "dups/hl-1.png", root / "dups/hl-2.png")
    cases.append(Case(b"dups/hl-2.png", SKIPPED, "same-file-seen", note="hard link"))
    os.symlink("hl-1.png", root / "dups/link-to-hl-1.png")
    cases.append(Case(b"dups/link-to-hl-1.png", SKIPPED, "same-file-seen", note="symlink in tree"))

    # A folder named like a picture is still a folder.
    put("album.jpg/inside.png", encoded(picture(402), "PNG"), INDEXED)

    # Links and special files: never hang, never follow out of the tree.
    special = root / "special"
    special.mkdir()
    os.symlink("no-such-file.jpg", special / "broken.jpg")
    cases.append(Case(b"special/broken.jpg", SKIPPED, "broken-symlink"))
    os.symlink("loop-b.jpg", special / "loop-a.jpg")
    os.symlink("loop-a.jpg", special / "loop-b.jpg")
    cases.append(Case(b"special/loop-a.jpg", SKIPPED, "symlink-loop"))
    cases.append(Case(b"special/loop-b.jpg", SKIPPED, "symlink-loop"))
    os.symlink("self.jpg", special / "self.jpg")
    cases.append(Case(b"special/self.jpg", SKIPPED, "symlink-loop"))
    os.symlink("..", special / "up")
    cases.append(Case(b"special/up", SKIPPED, "symlink-loop", note="folder loop"))
    os.mkfifo(special / "pipe.jpg")
    cases.append(Case(b"special/pipe.jpg", SKIPPED, "not-a-file", note="a reader would block forever"))
    os.symlink("/dev/zero", special / "zero.jpg")
    cases.append(Case(b"special/zero.jpg", SKIPPED, "symlink-outside-tree", note="endless bytes"))
    return cases


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
