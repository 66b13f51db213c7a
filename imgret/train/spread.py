"""Did the model learn anything? How spread out its embeddings of the validation pictures are.

A model that has learnt nothing maps every picture to nearly the same vector (after two epochs of
a plain run every distance was 0.0004-0.0006), and then every search result is noise. Export and
the end of training measure the mean pairwise cosine distance of the embeddings and warn below
:data:`SPREAD_FLOOR`; trained models sit far above it (0.1 to 1 on Fashion-MNIST and photos).
"""

from __future__ import annotations

import numpy as np

SPREAD_FLOOR = 0.01


def mean_cosine_distance(vectors: np.ndarray) -> float:
    """Mean of ``1 - cos`` over all pairs of distinct rows (0 for fewer than two rows)."""
    v = np.asarray(vectors, dtype=np.float64)
    n = v.shape[0]
    if n < 2:
        return 0.0
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    return float((n * n - sims.sum()) / (n * (n - 1)))  # the diagonal's n ones add nothing to 1 - cos


def collapse_warning(vectors: np.ndarray, what: str = "validation pictures") -> str | None:
    """One line of advice when the embeddings of ``vectors`` are nearly identical, else None."""
    n = len(vectors)
    distance = mean_cosine_distance(vectors)
    if n < 2 or distance >= SPREAD_FLOOR:
        return None
    return (f"the model gives nearly the same embedding to every picture (mean cosine distance {distance:.4f} "
            f"over {n} {what}, under {SPREAD_FLOOR}): it has learnt almost nothing, so search results will be "
            "noise; train longer (more --epochs) and check the data (enough distinct, readable pictures)")


def embed_uint8(embedder, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Embeddings of uint8 ``[N, S, S, 3]`` pictures by an eval-mode embedding module, on the CPU."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(embedder(torch.from_numpy(np.ascontiguousarray(images[start:start + batch]))).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
