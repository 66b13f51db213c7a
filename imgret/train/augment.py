"""Training-time input corruptions: noise (denoising), random views (shift, crop-resize, flip) and
random erasing. All randomness comes from a ``torch.Generator`` the loop seeds per epoch, so a
resumed run draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def random_view(x: torch.Tensor, gen: torch.Generator, *, min_scale: float = 0.75, max_shift: float = 0.125) -> torch.Tensor:
    """Per picture: random zoom-in (crop-resize), shift and horizontal flip, by one affine resample."""
    n = x.shape[0]
    scale = _uniform(n, min_scale, 1.0, gen)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = _uniform(n, -max_shift, max_shift, gen), _uniform(n, -max_shift, max_shift, gen)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
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
