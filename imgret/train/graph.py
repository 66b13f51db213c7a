"""A neighbour-graph head: a parametric UMAP fitted on the trained encoder's codes, without labels.

Contrastive and reconstruction training make good *local* neighbourhoods (the first hits are right)
but leave each kind of picture spread thin over the sphere, so the far end of a ranking mixes kinds.
This stage, run after the autoencoder's epochs, keeps the encoder frozen and fits a small MLP that
lays the codes out again by their k-nearest-neighbour graph (UMAP's fuzzy graph and cross-entropy,
with negative sampling), which pulls connected groups together. The exported embedding is the
L2-normalised code and the normalised head output side by side, so the first hits still come from
the code and the grouping from the head.

Steps: codes of every training picture (each averaged with its mirror) → exact k-NN by cosine →
per-point bandwidths (UMAP's ``rho``/``sigma``) → fuzzy union of the directed graph → edges sampled
by weight, each with a few random negatives, for ``graph_epochs`` passes.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from imgret.runtime.progress import ProgressCallback

# UMAP's curve 1 / (1 + a d^(2b)) for spread 1 and min_dist 0 (umap's find_ab_params gives these).
CURVE_A, CURVE_B = 1.929, 0.7915
NEGATIVES = 5


class GraphHead(nn.Module):
    """MLP from the L2-normalised code to graph coordinates; ``centre`` is their mean on the training set."""

    def __init__(self, latent_dim: int, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.register_buffer("centre", torch.zeros(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.uint8))

    def forward(self, code_unit: torch.Tensor) -> torch.Tensor:
        return self.net(code_unit) - self.centre


def knn(codes: torch.Tensor, k: int, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``k`` nearest neighbours (self excluded) of unit rows by cosine: (indices, distances 1 - cos).

    Rows are compared ``chunk`` at a time (by default as many as keep one block of similarities
    near 512 MB)."""
    n = codes.shape[0]
    k = min(k, n - 1)
    chunk = chunk or max(1, min(4096, 2**27 // max(n, 1)))
    idx = torch.empty(n, k, dtype=torch.long, device=codes.device)
    dist = torch.empty(n, k, device=codes.device)
    for start in range(0, n, chunk):
        sims = codes[start:start + chunk] @ codes.T
        rows = torch.arange(sims.shape[0], device=codes.device)
        sims[rows, rows + start] = -math.inf
        top, where = sims.topk(k, dim=1)
        idx[start:start + chunk], dist[start:start + chunk] = where, (1.0 - top).clamp(min=0.0)
    return idx, dist


def fuzzy_graph(idx: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """UMAP's symmetric fuzzy graph from k-NN lists: edges ``[2, E]`` and weights ``[E]`` in (0, 1]."""
    n, k = idx.shape
    rho = dist[:, :1]
    target = math.log2(k) if k > 1 else 1.0
    lo = torch.zeros(n, 1, device=dist.device)
    hi = torch.full((n, 1), math.inf, device=dist.device)
    sigma = torch.ones(n, 1, device=dist.device)
    for _ in range(64):  # bisection for each point's bandwidth
        total = torch.exp(-(dist - rho).clamp(min=0.0) / sigma).sum(dim=1, keepdim=True)
        too_wide = total > target
        hi = torch.where(too_wide, sigma, hi)
        lo = torch.where(too_wide, lo, sigma)
        sigma = torch.where(torch.isinf(hi), sigma * 2.0, (lo + hi) / 2.0)
    weights = torch.exp(-(dist - rho).clamp(min=0.0) / sigma.clamp(min=1e-12))
    rows = torch.arange(n, device=idx.device).repeat_interleave(k)
    a = torch.sparse_coo_tensor(torch.stack([rows, idx.reshape(-1)]), weights.reshape(-1), (n, n), check_invariants=True).coalesce()
    at = a.transpose(0, 1).coalesce()
    union = (a + at - a * at).coalesce()
    keep = union.values() > 0
    return union.indices()[:, keep], union.values()[keep]


def _q(sq_dist: torch.Tensor) -> torch.Tensor:
    return 1.0 / (1.0 + CURVE_A * sq_dist.clamp(min=1e-8) ** CURVE_B)


def fit_graph_head(  # noqa: PLR0913 - neighbours, epochs and seed mirror imgret train's --graph-* options
    codes: torch.Tensor,
    head: GraphHead,
    *,
    neighbours: int,
    epochs: int,
    seed: int,
    batch_size: int = 4096,
    lr: float = 1e-3,
    progress: ProgressCallback | None = None,
) -> dict:
    """Fit ``head`` in place on unit-norm ``codes`` ``[N, latent]`` (same device); return a small report.
    ``progress(done, total, note)`` is called after each pass over the edges, with the loss as note."""
    started = time.monotonic()
    gen = torch.Generator(device="cpu").manual_seed(seed * 104_729 + 17)
    codes = F.normalize(codes.float(), dim=1)
    idx, dist = knn(codes, neighbours)
    edges, weights = fuzzy_graph(idx, dist)
    n, count = codes.shape[0], edges.shape[1]
    optimizer = torch.optim.Adam(head.net.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * math.ceil(count / batch_size))
    head.train()
    loss_value = math.nan
    for epoch in range(epochs):
        picks = torch.multinomial(weights.cpu(), count, replacement=True, generator=gen).to(codes.device)
        negatives = torch.randint(0, n, (count * NEGATIVES,), generator=gen).to(codes.device)
        total = 0.0
        for start in range(0, count, batch_size):
            e = picks[start:start + batch_size]
            a, b = head.net(codes[edges[0, e]]), head.net(codes[edges[1, e]])
            neg = head.net(codes[negatives[start * NEGATIVES:(start + len(e)) * NEGATIVES]])
            attract = -torch.log(_q(((a - b) ** 2).sum(dim=1)).clamp(min=1e-4)).mean()
            repel_q = _q(((a.repeat_interleave(NEGATIVES, dim=0) - neg) ** 2).sum(dim=1))
            repel = -torch.log((1.0 - repel_q).clamp(min=1e-4)).mean()
            loss = attract + NEGATIVES * repel
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(e)
        loss_value = total / count
        if progress is not None:
            progress(epoch + 1, epochs, f"loss {loss_value:.5f}")
    head.eval()
    with torch.no_grad():
        out = torch.cat([head.net(codes[s:s + 8192]) for s in range(0, n, 8192)])
        head.centre.copy_(out.mean(dim=0))
        head.fitted.fill_(1)
    return {"points": n, "neighbours": idx.shape[1], "edges": count, "epochs": epochs, "loss": loss_value,
            "seconds": round(time.monotonic() - started, 1)}
