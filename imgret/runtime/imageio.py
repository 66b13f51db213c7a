"""Reading pictures: which files are images, and how one becomes the encoder's input.

This is the one definition of preprocessing. Training (``imgret.train``), export parity checks and
the runtime all call :func:`preprocess`, so they cannot drift apart.

Rules, in order: only regular files with an allow-listed suffix; the file's bytes are read with a
non-blocking open (a FIFO or device never hangs us) and a size cap; Pillow identifies the format
from the bytes, not the name, and only formats in the allowlist are decoded; a pixel cap refuses
decompression bombs before decoding; JPEGs are decoded at reduced scale (``draft``) when the target is
small; the first frame of an animation is used; EXIF orientation is applied; every mode becomes RGB
(alpha and palette transparency composited on a fixed white background, CMYK through Pillow's
converter, 16-bit and float greys rescaled to 8 bits); finally the whole picture is resized to a
``size`` x ``size`` square with bilinear filtering (the ``squash-bilinear`` rule in the model metadata).
"""

from __future__ import annotations

import importlib
import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

from imgret.errors import ImageError

# Suffixes we look at while scanning. HEIC/AVIF join when pillow-heif (or Pillow's own AVIF) is there.
BASE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# Formats Pillow may decode; anything else (EPS, which would start Ghostscript, PSD, ...) is refused.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
MAX_PIXELS = 80_000_000  # about a 10,000 x 8,000 photograph
MAX_FILE_BYTES = 256 * 1024 * 1024
BACKGROUND = (255, 255, 255)

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def _optional_suffixes() -> tuple[frozenset[str], frozenset[str]]:
    suffixes: set[str] = set()
    formats: set[str] = set()
    try:  # pragma: no cover - depends on an optional plugin
        import pillow_heif

        pillow_heif.register_heif_opener()
        suffixes |= {".heic", ".heif"}
        formats |= {"HEIF"}
        if hasattr(pillow_heif, "register_avif_opener"):
            pillow_heif.register_avif_opener()
            suffixes |= {".avif"}
            formats |= {"AVIF"}
    except Exception:
        pass
    try:  # Pillow's own AVIF plugin registers the suffix only when its codec library is there
        from PIL import AvifImagePlugin

        if getattr(AvifImagePlugin, "SUPPORTED", False):  # pragma: no cover - Pillow build dependent
            suffixes |= {".avif"}
            formats |= {"AVIF"}
    except ImportError:  # pragma: no cover - Pillow older than 11.2
        pass
    return frozenset(suffixes), frozenset(formats)


_EXTRA_SUFFIXES, _EXTRA_FORMATS = _optional_suffixes()
IMAGE_SUFFIXES = BASE_SUFFIXES | _EXTRA_SUFFIXES
# The Pillow plugin of each allowed format. Only these are imported, when the first picture is
# opened: Image.init() would import all ~45 plugins (PDF, EPS, DDS, ...), a tenth of a cold query.
_PLUGINS = {"JPEG": "JpegImagePlugin", "PNG": "PngImagePlugin", "WEBP": "WebPImagePlugin",
            "GIF": "GifImagePlugin", "BMP": "BmpImagePlugin", "TIFF": "TiffImagePlugin", "MPO": "MpoImagePlugin"}
_decodable: tuple[str, ...] | None = None


def decodable_formats() -> tuple[str, ...]:
    """The formats Pillow may decode: the allowlist (and optional HEIF/AVIF) as far as this Pillow
    build registers them; imports their plugins on first call."""
    global _decodable  # noqa: PLW0603 - computed once per process, on first use
    if _decodable is None:
        for name in _PLUGINS.values():
            try:
                importlib.import_module(f"PIL.{name}")
            except ImportError:  # pragma: no cover - a Pillow build without this codec
                pass
        _decodable = tuple(sorted((ALLOWED_FORMATS | _EXTRA_FORMATS) & set(Image.OPEN)))
    return _decodable


def __getattr__(name: str):
    if name == "DECODABLE_FORMATS":  # the constant this module had: computed when first asked for
        return decodable_formats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def has_image_suffix(path: str | os.PathLike | bytes) -> bool:
    """True when the file name ends in a suffix imgret treats as a picture (case-insensitive)."""
    return is_picture_name(os.path.basename(os.fsdecode(path)))


def is_picture_name(name: str) -> bool:
    """:func:`has_image_suffix` for a bare file name (no folder), as the scan sees them: a few string
    operations, since a walk calls it once per file. The suffix rule is ``os.path.splitext``'s: the
    last dot, not counting the leading dots of a hidden name."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_SUFFIXES and (name[0] != "." or name[:dot].strip(".") != "")


def read_image_bytes(path: str | os.PathLike | bytes) -> bytes:
    """Read a regular file's bytes without ever blocking on a pipe or device.

    Raises :class:`ImageError` for anything that is not a regular, readable file under the size cap.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except PermissionError as exc:
        raise ImageError(f"permission denied: {exc.strerror}", "permission-denied") from exc
    except FileNotFoundError as exc:
        raise ImageError("file not found (or a broken link)", "missing") from exc
    except OSError as exc:
        raise ImageError(f"cannot open: {exc.strerror}", "unreadable") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("not a regular file", "not-a-file")
        if st.st_size == 0:
            raise ImageError("empty file", "empty")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageError(f"file larger than {MAX_FILE_BYTES // 2**20} MiB", "too-large")
        chunks = []
        remaining = st.st_size + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > MAX_FILE_BYTES:
            raise ImageError("file grew past the size cap while being read", "too-large")
        return data
    except OSError as exc:
        raise ImageError(f"read failed: {exc.strerror}", "unreadable") from exc
    finally:
        os.close(fd)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on :data:`BACKGROUND`."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if mode == "F":
            hi = 1.0 if arr.max() <= 1.0 else max(float(arr.max()), 1.0)
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    if mode == "CMYK":
        return img.convert("RGB")
    if mode in ("1", "L", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB")
    if mode.startswith("I;16") or mode.startswith("BGR"):
        return img.convert("RGB")
    return img.convert("RGB")


def decode(data: bytes, size: int | None = None) -> Image.Image:
    """Decode image bytes to an upright 8-bit RGB Pillow image.

    ``size``, when given, lets JPEGs decode at a reduced scale that still covers ``size`` x ``size``.
    Raises :class:`ImageError` with a reason for anything that is not a safe, decodable picture.
    """
    with warnings.catch_warnings():
        # Pillow warns about corrupt EXIF and the like on stderr; a bad file is a skip reason, not noise.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = _open(data)
        except Image.DecompressionBombError as exc:
            raise ImageError("too many pixels (decompression bomb?)", "too-many-pixels") from exc
        except Image.DecompressionBombWarning as exc:
            raise ImageError("too many pixels (decompression bomb?)", "too-many-pixels") from exc
        except Exception as exc:
            raise ImageError("not a supported image format", "not-an-image") from exc
        try:
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageError("image has no pixels", "corrupt")
            if width * height > MAX_PIXELS:
                raise ImageError(f"too many pixels ({width}x{height})", "too-many-pixels")
            # Image.open leaves an animation or multi-page file on its first frame; asking for
            # n_frames would walk every frame of a file that may hold millions.
            if size is not None and img.format in ("JPEG", "MPO"):
                img.draft("RGB", (size, size))
            img.load()
            # in_place: exif_transpose otherwise copies the whole picture even when it has no
            # orientation tag (+30 ms on a 4K PNG); in place it touches nothing unless it must rotate.
            ImageOps.exif_transpose(img, in_place=True)
            return _to_rgb(img)
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("too many pixels (decompression bomb?)", "too-many-pixels") from exc
        except MemoryError as exc:
            raise ImageError("out of memory while decoding", "too-many-pixels") from exc
        except Exception as exc:  # Pillow raises many types for broken data
            raise ImageError(f"corrupt image data ({type(exc).__name__})", "corrupt") from exc


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Metadata chunks that Pillow decompresses at open under a size cap; the pixels never need them.
PNG_METADATA_CHUNKS = frozenset({b"iCCP", b"zTXt", b"iTXt", b"tEXt"})


def _open(data: bytes) -> Image.Image:
    """``Image.open`` limited to the allowlist; a PNG whose metadata Pillow refuses (a multi-megabyte
    ICC profile, oversized text) is opened again without its metadata chunks, as only pixels are used."""
    try:
        return Image.open(io.BytesIO(data), formats=decodable_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception:
        stripped = _strip_png_metadata(data) if data.startswith(PNG_SIGNATURE) else None
        if stripped is None:
            raise
    return Image.open(io.BytesIO(stripped), formats=decodable_formats())


def _strip_png_metadata(data: bytes) -> bytes | None:
    """The PNG without :data:`PNG_METADATA_CHUNKS`, or ``None`` when it has none (or is malformed)."""
    out = [PNG_SIGNATURE]
    pos, dropped = len(PNG_SIGNATURE), False
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            return None
        if data[pos + 4:pos + 8] in PNG_METADATA_CHUNKS:
            dropped = True
        else:
            out.append(data[pos:end])
        pos = end
    return b"".join(out) if dropped else None


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """Resize a whole RGB picture to ``size`` x ``size`` (bilinear, antialiased) as uint8 HxWx3."""
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (size, size, 3):  # pragma: no cover - defensive
        raise ImageError(f"unexpected decoded shape {arr.shape}", "corrupt")
    return arr


def preprocess(source: str | os.PathLike | bytes | Image.Image | np.ndarray, size: int) -> np.ndarray:
    """Turn a path, raw bytes, a Pillow image or an array into the encoder's uint8 ``[size, size, 3]``.

    A str or PathLike is a file path (use :func:`load` for a bytes path); bytes are the file's
    content. Both go through :func:`decode`. Arrays may be HxW grey,
    HxWx3 RGB or HxWx4 RGBA, uint8 or float in [0, 1].
    """
    if isinstance(source, Image.Image):
        img = _to_rgb(ImageOps.exif_transpose(source) or source)
    elif isinstance(source, np.ndarray):
        img = array_to_image(source)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        img = decode(bytes(source), size)
    else:
        img = decode(read_image_bytes(source), size)
    return resize_square(img, size)


def array_to_image(arr: np.ndarray) -> Image.Image:
    """Make an RGB Pillow image from a numpy array (grey, RGB or RGBA; uint8 or floats in [0, 1])."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise ImageError(f"array of shape {a.shape} is not an image (need HxW, HxWx3 or HxWx4)", "bad-array")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_:
            a = a.astype(np.float64)
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if f.max(initial=0.0) <= 1.0 else 1.0
        a = np.clip(f * scale + 0.5, 0, 255).astype(np.uint8)
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[a.ndim if a.ndim == 2 else a.shape[2]]
    return _to_rgb(Image.fromarray(np.ascontiguousarray(a), mode))


def load(path: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """Read and preprocess one file: the runtime's and training's common entry point."""
    return resize_square(decode(read_image_bytes(path), size), size)
