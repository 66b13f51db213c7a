"""A feature-map head: the encoder's last feature map, reduced by PCA, exported beside the code.

The code is the output of a linear layer trained (with a contrastive term) to ignore what differs
between two views of a picture; some detail that tells look-alikes apart is lost on the way. The
feature map just before that layer keeps it: on Fashion-MNIST its nearest neighbours were more often
of the same kind than the code's (P@10 0.847 against 0.834, see benchmarks/README.md), and the two
side by side did better than either.

The head is fitted after the epochs with the encoder frozen, without labels: each picture's map
(averaged with its mirror's, flipped back into place) → averaged with its own mirror image, so the
head gives a picture and its mirror the same output, as mirror averaging does for the code → ReLU →
square root (which evens out a few strong activations) → mean and covariance over the training
pictures → the leading principal axes, with their variances. (On Fashion-MNIST the mirror-symmetric
map scored as well as the plain one: P@10 0.850 against 0.849.)
At export each axis can be scaled by its variance to the power ``-whiten`` (partial whitening: 0.5
gives every axis the same variance, 0 leaves the PCA as it is), so that a few strong directions do
not decide the distances alone; on Fashion-MNIST 0.35 raised the P@10 of recipe
``seed-simclr-graph-w64`` from 0.854 to 0.862 (benchmarks/README.md).
The exported embedding holds the unit code and ``map_weight`` times the unit projected map.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
from torch import nn

# A covariance of this many features is 512 MB in float64 and its eigendecomposition takes about a
# minute on two CPU cores; larger maps are refused rather than ground through.
MAX_MAP_FEATURES = 8192


def split_index(encoder: nn.Sequential) -> int:
    """Index of the first layer after the last feature map (the Flatten or the global pooling)."""
    for i, layer in enumerate(encoder):
        if isinstance(layer, (nn.Flatten, nn.AdaptiveAvgPool2d)):
            return i
    raise ValueError("the encoder has no Flatten or global pooling layer")


def map_features(fmap: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` feature map → ``[N, C·H·W]`` rows: averaged with its left-right mirror, ReLU,
    square root."""
    symmetric = (fmap + torch.flip(fmap, dims=[3])) * 0.5
    return torch.sqrt(torch.clamp(symmetric.flatten(1).float(), min=0.0))


class MapHead(nn.Module):
    """Centring and projection of :func:`map_features` onto ``dim`` principal axes (buffers, no weights).

    ``variances`` holds the variance along each axis; a head fitted before imgret kept them loads
    with zeros there, and :meth:`has_variances` says so."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("components", torch.zeros(in_features, dim))
        self.register_buffer("variances", torch.zeros(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "components" in state_dict and prefix + "variances" not in state_dict:
            state_dict[prefix + "variances"] = torch.zeros_like(self.variances)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def has_variances(self) -> bool:
        return bool((self.variances > 0).any())

    def forward(self, fmap: torch.Tensor, whiten: float = 0.0) -> torch.Tensor:
        projected = (map_features(fmap) - self.mean) @ self.components
        if whiten:
            # The floor keeps axes of (almost) no variance from being scaled up without bound.
            floor = torch.clamp(self.variances.max() * 1e-6, min=1e-12)
            projected = projected * torch.clamp(self.variances, min=floor).pow(-whiten)
        return projected


def _few_points_axes(centred: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The principal axes of fewer points than features from their n x n Gram matrix (the same axes
    as the covariance's eigenvectors, at the cost of n, not of the features, cubed: a few pictures at
    8,192 features took minutes the other way). Ascending eigenvalues as ``eigh`` gives them, and
    ``keep`` axes, largest first; axes past the points' rank are zero (they carry no variance)."""
    n, features = centred.shape
    values, vectors = torch.linalg.eigh(centred @ centred.T / (n - 1))
    values = values.clamp(min=0)
    axes = torch.zeros(features, keep, dtype=centred.dtype)
    order = torch.arange(n - 1, -1, -1)[:keep]
    for column, i in enumerate(order.tolist()):
        if values[i] > 1e-12 * max(float(values[-1]), 1e-300):
            axes[:, column] = centred.T @ vectors[:, i] / torch.sqrt(values[i] * (n - 1))
    padded = torch.zeros(features, dtype=values.dtype)
    padded[-n:] = values  # ascending, like eigh of the full covariance (whose other values are 0)
    return padded, axes


def fit_map_head(batches: Iterable[torch.Tensor], head: MapHead) -> dict:
    """Fit ``head`` in place from feature maps ``[n, C, H, W]`` (streamed: only the covariance is
    kept); return a small report. The sign of each axis is fixed (largest entry positive), so the
    same pictures give the same head."""
    started = time.monotonic()
    in_features, dim = head.components.shape
    total = torch.zeros(in_features, dtype=torch.float64)
    kept: list[torch.Tensor] | None = []  # the rows themselves, while there are fewer than features
    gram = None
    count = 0
    for fmap in batches:
        rows = map_features(fmap).cpu().double()
        total += rows.sum(dim=0)
        count += rows.shape[0]
        if gram is None:
            kept.append(rows)
            if count >= in_features:  # from here on only the covariance is kept
                stacked = torch.cat(kept)
                gram, kept = stacked.T @ stacked, None
        else:
            gram += rows.T @ rows
    if count < 2:
        raise ValueError(f"the map head needs at least 2 pictures, got {count}")
    mean = total / count
    keep = min(dim, in_features)
    if gram is None:
        values, axes = _few_points_axes(torch.cat(kept) - mean, keep)
    else:
        cov = (gram - count * torch.outer(mean, mean)) / (count - 1)
        values, vectors = torch.linalg.eigh(cov)
        axes = vectors[:, -keep:].flip(1)
    signs = torch.sign(axes.gather(0, axes.abs().argmax(dim=0, keepdim=True)))
    axes = axes * torch.where(signs == 0, 1.0, signs)
    with torch.no_grad():
        head.mean.copy_(mean.float())
        head.components.zero_()
        head.components[:, :keep] = axes.float()
        head.variances.zero_()
        head.variances[:keep] = values[-keep:].flip(0).clamp(min=0).float()
        head.fitted.fill_(1)
    explained = float(values[-keep:].sum() / values.clamp(min=0).sum().clamp(min=1e-12))
    return {"points": count, "features": in_features, "dim": dim, "explained_variance": round(explained, 4),
            "seconds": round(time.monotonic() - started, 1)}
