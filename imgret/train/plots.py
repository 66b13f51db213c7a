"""Pictures of a run, drawn with Pillow only: the loss curve and a reconstruction grid."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from imgret.runtime.atomic import write_with

TRAIN_COLOUR, VAL_COLOUR = (31, 119, 180), (214, 39, 40)


def _save(img: Image.Image, path: str) -> None:
    write_with(path, lambda fh: img.save(fh, format="PNG"))


def loss_chart(history: list[dict], path: str, *, width: int = 640, height: int = 400) -> None:
    """Train and validation reconstruction loss per epoch as a line chart (log scale when the range is
    wide). The training series is the reconstruction part of the objective (``train_mse``) when the
    history has it, so both lines measure the same thing."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 70, width - 20, 30, height - 40
    series = {
        "train": [(r["epoch"], r.get("train_mse", r["train_loss"])) for r in history],
        "val": [(r["epoch"], r["val_loss"]) for r in history if r.get("val_loss") is not None],
    }
    values = [v for pts in series.values() for _, v in pts if v is not None and math.isfinite(v) and v > 0]
    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text((left, 8), "reconstruction MSE per epoch  (blue: train, red: validation)", fill="black")
    if values:
        lo, hi = min(values), max(values)
        use_log = hi / lo > 20
        f = (lambda v: math.log10(v)) if use_log else (lambda v: v)
        flo, fhi = f(lo), f(hi)
        if fhi - flo < 1e-12:
            flo, fhi = flo - 0.5, fhi + 0.5
        last_epoch = max(e for pts in series.values() for e, _ in pts)

        def xy(epoch: float, v: float) -> tuple[float, float]:
            x = left + (right - left) * ((epoch - 1) / max(last_epoch - 1, 1))
            return x, bottom - (bottom - top) * (f(v) - flo) / (fhi - flo)

        for frac in (0.0, 0.5, 1.0):
            label = flo + frac * (fhi - flo)
            y = bottom - (bottom - top) * frac
            draw.text((4, y - 6), f"{10 ** label if use_log else label:.4g}", fill="black")
        draw.text((left, bottom + 8), "1", fill="black")
        draw.text((right - 20, bottom + 8), str(last_epoch), fill="black")
        for (_, pts), colour in zip(series.items(), (TRAIN_COLOUR, VAL_COLOUR), strict=True):
            pts = [xy(e, v) for e, v in pts if v is not None and math.isfinite(v) and v > 0]
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for x, y in pts:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    _save(img, path)


RECON_LABELS = ("input", "reconstruction")
LABEL_WIDTH, TITLE_HEIGHT = 100, 18


def recon_grid(originals: np.ndarray, recons: np.ndarray, path: str, *, epoch: int | None = None,
               cell: int = 96) -> None:
    """Originals (top row) above their reconstructions (bottom row), uint8 NHWC arrays; each row is
    labelled on the left and the epoch is written above, so the picture explains itself."""
    n = len(originals)
    img = Image.new("RGB", (LABEL_WIDTH + max(n, 1) * cell, TITLE_HEIGHT + 2 * cell), "white")
    draw = ImageDraw.Draw(img)  # text in Pillow's default font
    draw.text((4, 3), "" if epoch is None else f"epoch {epoch}", fill="black")
    for row, label in enumerate(RECON_LABELS):
        draw.text((4, TITLE_HEIGHT + row * cell + cell // 2 - 6), label, fill="black")
    for i in range(n):
        for row, arr in enumerate((originals[i], recons[i])):
            tile = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).resize((cell, cell), Image.Resampling.NEAREST)
            img.paste(tile, (LABEL_WIDTH + i * cell, TITLE_HEIGHT + row * cell))
    _save(img, path)
