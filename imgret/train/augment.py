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
