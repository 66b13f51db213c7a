"""The heavy edits of the near-duplicate benchmark: what people do to a picture before reposting it.

Each edit takes an RGB picture and a seeded generator and returns the edited picture; the
parameters are drawn from the generator, so a set is reproducible. What each one does:

* ``crop50`` — a crop keeping 40–60% of the area, same aspect, random place;
* ``rot90`` — a quarter turn, clockwise or anticlockwise (the canvas turns with it);
* ``rot180`` — upside down;
* ``grey`` — greyscale (ITU-R 601 luma), stored as RGB;
* ``caption`` — either a caption band (dark, 85% opaque, white text) across the top or bottom, or
  a logo (a coloured rounded box with letters) in a corner; either covers about 10% (8–12%) of
  the picture;
* ``letterbox`` — black bars on two opposite sides (top/bottom or left/right, whichever the
  generator picks), together 25–45% of the new canvas in that direction;
* ``blur`` — gaussian blur, radius 2–3 px at the picture's own size;
* ``screenshot`` — the picture scaled to 35–60% of the width of a 1280x800 "desktop"
  (light grey, a title bar, a side panel of grey boxes) at a random place inside it.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SCREEN = (1280, 800)


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow without FreeType sizes: the small bitmap font
        return ImageFont.load_default()


def _words(rng: np.random.Generator, count: int) -> str:
    return " ".join("".join(rng.choice(list(_LETTERS), size=int(rng.integers(3, 9)))) for _ in range(count))


def crop_area(img: Image.Image, rng: np.random.Generator, low: float, high: float) -> Image.Image:
    """A same-aspect crop keeping a share of the area drawn from [low, high], at a random place."""
    w, h = img.size
    frac = math.sqrt(rng.uniform(low, high))
    cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def caption(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste a caption band or a corner logo over about 10% of the picture."""
    out = img.convert("RGBA")
    w, h = out.size
    share = rng.uniform(0.08, 0.12)
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if rng.random() < 0.5:  # caption band across the whole width
        band = max(1, round(h * share))
        y0 = 0 if rng.random() < 0.5 else h - band
        draw.rectangle((0, y0, w, y0 + band), fill=(20, 20, 20, 217))
        font = _font(max(8, round(band * 0.6)))
        draw.text((round(w * 0.03), y0 + band * 0.2), _words(rng, 6), fill=(255, 255, 255, 255), font=font)
    else:  # logo: a box of ~10% area with two to four letters, in one corner
        side_w = round(math.sqrt(share * w * h * 1.6))
        side_h = max(1, round(share * w * h / max(1, side_w)))
        side_w = min(side_w, w)
        margin = round(0.03 * min(w, h))
        x0 = margin if rng.random() < 0.5 else w - side_w - margin
        y0 = margin if rng.random() < 0.5 else h - side_h - margin
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.rounded_rectangle((x0, y0, x0 + side_w, y0 + side_h), radius=side_h // 5, fill=(*colour, 255))
        text = "".join(rng.choice(list(_LETTERS[:26]), size=int(rng.integers(2, 5))))
        ink = (255, 255, 255, 255) if sum(colour) < 384 else (0, 0, 0, 255)
        draw.text((x0 + side_w * 0.12, y0 + side_h * 0.15), text, fill=ink, font=_font(max(8, round(side_h * 0.6))))
    return Image.alpha_composite(out, layer).convert("RGB")


def letterbox(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Black bars on two opposite sides, together 25–45% of the new canvas across them."""
    w, h = img.size
    bars = rng.uniform(0.25, 0.45)
    if rng.random() < 0.5:  # letterbox: bars above and below
        cw, ch = w, round(h / (1 - bars))
    else:  # pillarbox: bars left and right
        cw, ch = round(w / (1 - bars)), h
    canvas = Image.new("RGB", (cw, ch), (0, 0, 0))
    canvas.paste(img, ((cw - w) // 2, (ch - h) // 2))
    return canvas


def screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The picture shown at 35–60% of the width of a plain 1280x800 desktop, at a random place."""
    sw, sh = SCREEN
    canvas = Image.new("RGB", SCREEN, (236, 236, 236))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, sw, 28), fill=(60, 60, 66))  # title bar
    draw.text((12, 6), _words(rng, 3), fill=(230, 230, 230), font=_font(16))
    panel = round(sw * 0.18)
    for i in range(8):  # a side panel of list entries
        y = 48 + i * 40
        draw.rectangle((12, y, panel - 12, y + 24), fill=(205, 205, 210))
    scale = rng.uniform(0.35, 0.60) * sw / img.width
    shown = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                       Image.Resampling.LANCZOS)
    if shown.height > sh - 40:  # a tall picture: fit the height instead
        scale = (sh - 40) / shown.height
        shown = shown.resize((max(1, round(shown.width * scale)), sh - 40), Image.Resampling.LANCZOS)
    x = int(rng.integers(panel, max(panel + 1, sw - shown.width + 1)))
    y = int(rng.integers(32, max(33, sh - shown.height + 1)))
    canvas.paste(shown, (min(x, sw - shown.width), y))
    return canvas


def apply(img: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    """Apply one heavy edit by name (see the module docstring)."""
    if name == "crop50":
        return crop_area(img, rng, 0.40, 0.60)
    if name == "rot90":
        turn = Image.Transpose.ROTATE_90 if rng.random() < 0.5 else Image.Transpose.ROTATE_270
        return img.transpose(turn)
    if name == "rot180":
        return img.transpose(Image.Transpose.ROTATE_180)
    if name == "grey":
        return img.convert("L").convert("RGB")
    if name == "caption":
        return caption(img, rng)
    if name == "letterbox":
        return letterbox(img, rng)
    if name == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(2.0, 3.0))))
    if name == "screenshot":
        return screenshot(img, rng)
    raise ValueError(f"unknown heavy edit {name!r}")
