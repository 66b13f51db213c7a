"""Named training recipes: ``imgret train --recipe NAME``.

A recipe is a set of :class:`~imgret.train.config.TrainConfig` values; a setting the user gives
explicitly wins over the recipe's. ``default`` is the dataclass's own defaults (what ``imgret train
FOLDER`` trains with no flags), so it names no values here; the others say how they differ from it.

``default`` is the best general recipe found on Fashion-MNIST (``seed-simclr-graph-w64-white`` in
``benchmarks/fmnist_retrieval.py``): two random views of each picture pulled together by a contrastive
term (temperature 0.7) on a training-only projector, reconstruction of one view by a half-size
decoder, and after the epochs a 16-d neighbour-graph head and, on the seed architecture, a 256-d map
head, exported beside the code with mirror averaging. Its architecture follows the picture size
(``--arch auto``): the seed encoder (width 64) up to 32 px, where it is best; above that the conv
encoder with global pooling (width 32, no map head), because the seed encoder's Flatten→Dense grows
with the square of the size (at 128 px its code layer alone would hold 17 million weights).

This module imports no torch, so the CLI can list the recipes instantly.
"""

from __future__ import annotations

# The original plain autoencoder: the settings ``imgret train`` used before recipes existed.
_PLAIN = {
    "arch": "conv", "width": 32, "batch_size": 64, "lr": 1e-3, "augment": False, "invariance": 0.0,
    "invariance_loss": "cosine", "temperature": 0.2, "colour_jitter": 0.0, "rotate": 0.0, "min_scale": 0.75,
    "decoder": "full", "recon_views": 2, "map_dim": 0, "graph_dim": 0, "graph_epochs": 10,
    "graph_weight": 1.0, "projector": False,
}

RECIPES: dict[str, dict] = {
    "default": {},
    "plain": _PLAIN,
    # The original project's architecture (a port of its Keras model), latent 16, plain reconstruction.
    "seed": dict(_PLAIN, arch="seed", latent_dim=16),
}

RECIPE_HELP = ("default: contrastive views + reconstruction, neighbour-graph and map heads, exported with mirror "
               "averaging (the best general recipe; seed arch up to 32 px, conv above); plain: the original plain "
               "autoencoder; seed: the original project's model (latent 16). Options given explicitly override "
               "the recipe's values.")


def recipe_values(name: str) -> dict:
    """The settings recipe ``name`` sets (a copy); raise ``KeyError`` for an unknown name."""
    return dict(RECIPES[name])
