"""A montage: each query picture beside its results, captioned with rank and distance.

This is the picture the original project showed after a search, as one image file (written atomically).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from imgret.errors import ImageError
from imgret.runtime import atomic, imageio

CAPTION_HEIGHT = 22
PAD = 6
QUERY_COLOUR = (200, 40, 40)
BACKGROUND = (245, 245, 245)
# The montage's format follows its file's suffix; nothing else is written.
FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
MONTAGE_SUFFIXES = tuple(FORMATS)


def _thumb(source, size: int) -> Image.Image:
    try:
        if isinstance(source, Image.Image):
            img = imageio.preprocess(source, size)
            img = Image.fromarray(img)
        else:
            img = imageio.decode(imageio.read_image_bytes(source), size)
    except ImageError:
        return Image.new("RGB", (size, size), (200, 200, 200))
    img = img.copy()
    img.thumbnail((size, size), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), BACKGROUND)
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    return canvas


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def make_montage(results: Sequence, out_path: str | os.PathLike, *, thumb: int = 160, columns: int | None = None) -> str:
    """Write one image: a row per :class:`~imgret.runtime.library.QueryResult`, query first (red frame).

    Returns the path written. The format follows the file suffix (:data:`MONTAGE_SUFFIXES`: JPEG,
    PNG, WebP); any other suffix raises ``ValueError`` before anything is drawn.
    """
    out = os.fspath(out_path)
    fmt = FORMATS.get(os.path.splitext(out)[1].lower())
    if fmt is None:
        raise ValueError(f"{out}: a montage's suffix must be one of {', '.join(MONTAGE_SUFFIXES)}")
    rows = list(results)
    if not rows:
        raise ValueError("nothing to draw: no query results")
    per_row = columns or max(len(r.hits) for r in rows) + 1
    cell_w, cell_h = thumb + PAD, thumb + CAPTION_HEIGHT + PAD
    sheet = Image.new("RGB", (PAD + per_row * cell_w, PAD + len(rows) * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(13)
    for r, result in enumerate(rows):
        y = PAD + r * cell_h
        cells = [(result.query, "query", True)] + [
            (h.path, f"#{h.rank}  d={h.distance:.3f}", False) for h in result.hits
        ]
        for c, (source, caption, is_query) in enumerate(cells[:per_row]):
            x = PAD + c * cell_w
            sheet.paste(_thumb(source, thumb), (x, y))
            if is_query:
                draw.rectangle([x - 2, y - 2, x + thumb + 1, y + thumb + 1], outline=QUERY_COLOUR, width=3)
            draw.text((x + 2, y + thumb + 4), caption, fill=(20, 20, 20), font=font)
    options = {"quality": 90} if fmt == "JPEG" else {}
    atomic.write_with(out, lambda fh: sheet.save(fh, format=fmt, **options))
    return out
