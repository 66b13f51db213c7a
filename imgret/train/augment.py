"""Training-time input corruptions: noise (denoising), random views (shift, crop-resize, flip) and
random erasing. All randomness comes from a ``torch.Generator`` the loop seeds per epoch, so a
resumed run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_view(x: torch.Tensor, gen: torch.Generator, *, min_scale: float = 0.75, max_shift: float = 0.125,
                rotate: float = 0.0) -> torch.Tensor:
    """Per picture: random zoom-in (crop-resize), shift, rotation (up to ``rotate`` degrees either way)
    and horizontal flip, by one affine resample."""
    n = x.shape[0]
    scale = _uniform(n, min_scale, 1.0, gen)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = _uniform(n, -max_shift, max_shift, gen), _uniform(n, -max_shift, max_shift, gen)
    angle = _uniform(n, -rotate, rotate, gen) * (torch.pi / 180.0) if rotate > 0 else torch.zeros(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = scale * cos * flip, -scale * sin
    theta[:, 1, 0], theta[:, 1, 1] = scale * sin * flip, scale * cos
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def random_erase(x: torch.Tensor, gen: torch.Generator, *, p: float = 0.5, area: tuple[float, float] = (0.02, 0.2)) -> torch.Tensor:
    """Per picture, with probability ``p``: fill a random rectangle with mid-grey."""
    n, _, h, w = x.shape
    frac = _uniform(n, *area, gen)
    aspect = torch.exp(_uniform(n, -1.0, 1.0, gen))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    y0 = (torch.rand(n, generator=gen) * (h - eh + 1)).long()
    x0 = (torch.rand(n, generator=gen) * (w - ew + 1)).long()
    use = torch.rand(n, generator=gen) < p
    ys, xs = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
    mask = ((ys >= y0[:, None, None]) & (ys < (y0 + eh)[:, None, None])
            & (xs >= x0[:, None, None]) & (xs < (x0 + ew)[:, None, None]) & use[:, None, None])
    return torch.where(mask[:, None].to(x.device), torch.full_like(x, 0.5), x)


def add_noise(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise of standard deviation ``std``, clamped back to ``[0, 1]``."""
    noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
    return (x + std * noise).clamp(0.0, 1.0)


def colour_jitter(x: torch.Tensor, gen: torch.Generator, *, amount: float = 0.3, hue: float = 0.06) -> torch.Tensor:
    """Per picture: brightness, contrast and saturation scaled by ``1 ± amount`` and the hue turned by up
    to ``hue`` of a full turn (a rotation of the chroma plane in YIQ space)."""
    n = x.shape[0]
    b = _uniform(n, 1 - amount, 1 + amount, gen).to(x)[:, None, None, None]
    c = _uniform(n, 1 - amount, 1 + amount, gen).to(x)[:, None, None, None]
    s = _uniform(n, 1 - amount, 1 + amount, gen).to(x)[:, None, None, None]
    turn = _uniform(n, -hue, hue, gen).to(x) * (2 * torch.pi)
    x = x * b
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = grey + (x - grey) * s
    rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]).to(x)
    yiq2rgb = torch.linalg.inv(rgb2yiq)
    cos, sin = torch.cos(turn), torch.sin(turn)
    rot = torch.zeros(n, 3, 3).to(x)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = yiq2rgb[None] @ rot @ rgb2yiq[None]  # [n, 3, 3]
    x = torch.einsum("nij,njhw->nihw", m, x)
    return x.clamp(0.0, 1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive agreement of two views: each code must pick its partner out of the batch (InfoNCE)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.t() / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


# Heavy edits a copy of a picture may carry (issue 16's "harder copies"): each acts on a float NCHW
# batch in [0, 1], on a share ``p`` of its pictures chosen by ``gen``, in a few batched tensor ops.

def _chosen(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def rotate90(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability ``p`` per picture: a quarter, half or three-quarter turn (square pictures)."""
    turns = torch.randint(1, 4, (x.shape[0],), generator=gen) * _chosen(x.shape[0], p, gen)
    out = x.clone()
    for k in (1, 2, 3):
        rows = (turns == k).nonzero().flatten().to(x.device)
        if len(rows):
            out[rows] = torch.rot90(x[rows], k, dims=(2, 3))
    return out


def greyscale(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability ``p`` per picture: its luma in all three channels."""
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    use = _chosen(x.shape[0], p, gen).to(x.device)[:, None, None, None]
    return torch.where(use, grey, x)


def caption(x: torch.Tensor, gen: torch.Generator, p: float, *, area: tuple[float, float] = (0.06, 0.14)) -> torch.Tensor:
    """With probability ``p`` per picture: a caption- or logo-like block (two colours in stripes of
    random pitch) over ``area`` of the picture, wide and low, at a random place."""
    n, _, h, w = x.shape
    frac = _uniform(n, *area, gen)
    bw = _uniform(n, 0.35, 0.9, gen)
    bh = (frac / bw).clamp(max=1.0)
    y0, x0 = torch.rand(n, generator=gen) * (1 - bh), torch.rand(n, generator=gen) * (1 - bw)
    pitch = torch.randint(1, 4, (n,), generator=gen)
    ink, paper = torch.rand(n, 3, generator=gen), torch.rand(n, 3, generator=gen)
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    inside = (((ys[None, :, None] >= y0[:, None, None]) & (ys[None, :, None] < (y0 + bh)[:, None, None]))
              & ((xs[None, None, :] >= x0[:, None, None]) & (xs[None, None, :] < (x0 + bw)[:, None, None])))
    inside &= _chosen(n, p, gen)[:, None, None]
    stripes = ((torch.arange(w)[None, None, :] // pitch[:, None, None]) % 2 == 0).expand(n, h, w)
    fill = torch.where(stripes[:, None], ink[:, :, None, None], paper[:, :, None, None]).to(x)
    return torch.where(inside[:, None].to(x.device), fill, x)


def _place(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Each picture shrunk by ``scale`` ([n, 2]: x, y), moved by ``shift`` ([n, 2], in half-sides) and
    laid on a plain ``fill`` colour ([n, 3])."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / scale[:, 0], 1 / scale[:, 1]
    theta[:, 0, 2], theta[:, 1, 2] = -shift[:, 0] / scale[:, 0], -shift[:, 1] / scale[:, 1]
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    placed = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    outside = (grid.abs() > 1).any(dim=3)[:, None]
    return torch.where(outside, fill.to(x)[:, :, None, None].expand_as(x), placed)


def _plain_colours(n: int, gen: torch.Generator) -> torch.Tensor:
    """Border colours: black, white or a random grey (what letterboxes and screenshots show)."""
    level = torch.where(torch.rand(n, generator=gen) < 0.5, torch.randint(0, 2, (n,), generator=gen).float(),
                        torch.rand(n, generator=gen))
    return level[:, None].expand(n, 3)


def border(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability ``p`` per picture: letterboxed (bars above and below) or pillarboxed (bars
    left and right), the picture squeezed to 55-85% of that side."""

    def geometry(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        squeeze = _uniform(k, 0.55, 0.85, gen)
        across = torch.rand(k, generator=gen) < 0.5
        scale = torch.ones(k, 2)
        scale[:, 0] = torch.where(across, squeeze, 1.0)
        scale[:, 1] = torch.where(across, 1.0, squeeze)
        return scale, torch.zeros(k, 2)

    return _shrink_onto_plain(x, gen, p, geometry)


def canvas(x: torch.Tensor, gen: torch.Generator, p: float) -> torch.Tensor:
    """With probability ``p`` per picture: shrunk to 40-80% of the side somewhere on a larger plain
    canvas (a screenshot of it)."""

    def geometry(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = _uniform(k, 0.4, 0.8, gen)
        scale = torch.stack([s * _uniform(k, 0.9, 1.1, gen), s], dim=1).clamp(max=1.0)
        return scale, (torch.rand(k, 2, generator=gen) * 2 - 1) * (1 - scale)

    return _shrink_onto_plain(x, gen, p, geometry)


def _shrink_onto_plain(x: torch.Tensor, gen: torch.Generator, p: float, geometry) -> torch.Tensor:
    """The chosen pictures (probability ``p`` each) placed, at the scale and shift ``geometry(k)``
    gives, on a plain background of a random colour."""
    rows = _chosen(x.shape[0], p, gen).nonzero().flatten()
    if not len(rows):
        return x
    k = len(rows)
    scale, shift = geometry(k)
    out = x.clone()
    out[rows.to(x.device)] = _place(x[rows.to(x.device)], scale, shift, _plain_colours(k, gen))
    return out


def blur(x: torch.Tensor, gen: torch.Generator, p: float, *, max_share: float = 0.015) -> torch.Tensor:
    """With probability ``p`` per picture: a gaussian blur; one radius per batch, drawn between 0.5 px
    and ``max_share`` of the side (at least 1 px), by two separable convolutions."""
    n, c, h, _ = x.shape
    use = _chosen(n, p, gen)
    if not bool(use.any()):
        return x
    sigma = float(_uniform(1, 0.5, max(1.0, max_share * h), gen))
    radius = max(1, int(round(3 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).to(x)
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(out, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return torch.where(use.to(x.device)[:, None, None, None], out, x)


def heavy_edits(x: torch.Tensor, gen: torch.Generator, *, rot90: float = 0.0, grey: float = 0.0,  # noqa: PLR0913 - one chance per edit, as the options
                caption_p: float = 0.0, border_p: float = 0.0, blur_p: float = 0.0, canvas_p: float = 0.0) -> torch.Tensor:
    """The heavy edits whose chance is above 0, in the order a copy would meet them (a screenshot or
    a letterbox of a captioned, turned picture); no random number is drawn for an edit that is off."""
    for chance, edit in ((caption_p, caption), (rot90, rotate90), (grey, greyscale), (border_p, border),
                         (canvas_p, canvas), (blur_p, blur)):
        if chance > 0:
            x = edit(x, gen, chance)
    return x
