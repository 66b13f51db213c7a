"""Checkpoints: plain dicts of tensors, numbers and strings, written atomically, read with
``torch.load(..., weights_only=True)``. No module is ever pickled.

A checkpoint holds the model, optimiser, scheduler and grad-scaler state dicts, the epoch count, the
best validation loss, the RNG states (as tensors), the run's config and history as JSON text, and a
training summary. :func:`load_encoder` turns one into an eval-mode :class:`EmbeddingModel`.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
import torch

from imgret.errors import TrainingError
from imgret.runtime.atomic import write_with
from imgret.train.config import TrainConfig
from imgret.train.models import EmbeddingModel, build_autoencoder

FORMAT = "imgret-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (:mod:`imgret.runtime.atomic`: never half-written)."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    write_with(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint safely (``weights_only=True``, on the CPU); raise :class:`TrainingError`."""
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise TrainingError(f"no checkpoint at {path}") from exc
    except Exception as exc:
        raise TrainingError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TrainingError(f"{path} is not an imgret checkpoint")
    if int(state.get("format_version", 0)) > FORMAT_VERSION:
        raise TrainingError(f"{path} was written by a newer imgret; upgrade imgret")
    return state


def resolve_checkpoint(source: str | os.PathLike) -> str:
    """A checkpoint file itself, or a run folder's ``best.pt`` (else its ``last.pt``)."""
    source = os.fspath(source)
    if os.path.isdir(source):
        for name in ("best.pt", "last.pt"):
            candidate = os.path.join(source, name)
            if os.path.isfile(candidate):
                return candidate
        raise TrainingError(f"run folder {source} has neither best.pt nor last.pt")
    if not os.path.isfile(source):
        raise TrainingError(f"no checkpoint or run folder at {source}")
    return source


def checkpoint_config(state: dict) -> TrainConfig:
    """The :class:`TrainConfig` stored inside a checkpoint."""
    return TrainConfig.from_json(state["config"])


def build_from_checkpoint(state: dict) -> torch.nn.Module:
    """The autoencoder of a checkpoint with its weights loaded, in eval mode."""
    model = build_autoencoder(checkpoint_config(state))
    model.load_state_dict(state["model"])
    return model.eval()


def load_encoder(source: str | os.PathLike, *, flip_tta: bool = False) -> EmbeddingModel:
    """Load a run folder or checkpoint as an eval-mode :class:`EmbeddingModel` (uint8 NHWC in).

    Example: ``emb = load_encoder("runs/photos"); vectors = emb(torch.from_numpy(batch_uint8))``.
    """
    state = load_checkpoint(resolve_checkpoint(source))
    return embedding_model(build_from_checkpoint(state), checkpoint_config(state), flip_tta=flip_tta)


def embedding_model(  # noqa: PLR0913 - the weights mirror imgret export's --graph-weight, --map-weight, --map-whiten
    model: torch.nn.Module, config: TrainConfig, *, flip_tta: bool = False,
                    graph_weight: float | None = None, map_weight: float | None = None,
                    map_whiten: float | None = None) -> EmbeddingModel:
    """The eval-mode :class:`EmbeddingModel` of an autoencoder, with its map and graph heads when it
    has them, weighted by ``map_weight`` / ``graph_weight`` (and the map whitened by ``map_whiten``)
    or else as the config says.

    Raises :class:`TrainingError` when the config asks for a head that was never fitted, or for
    whitening by a map head fitted before imgret kept its variances."""
    heads = {}
    for kind, weight, default in (("map", map_weight, config.map_weight), ("graph", graph_weight, config.graph_weight)):
        head = getattr(model, f"{kind}_head", None)
        if head is not None and int(head.fitted) == 0:
            raise TrainingError(f"this checkpoint's {kind} head was never fitted (training stopped before it, or "
                                "it is a last.pt of a later epoch than best.pt); run imgret train --resume on its "
                                "run folder")
        weight = default if weight is None else weight
        if weight <= 0:
            raise TrainingError(f"the {kind} weight must be positive")
        heads[f"{kind}_head"], heads[f"{kind}_weight"] = head, weight
    whiten = config.map_whiten if map_whiten is None else float(map_whiten)
    if not 0 <= whiten <= 1:
        raise TrainingError("the map whitening must be between 0 and 1")
    if heads["map_head"] is not None:
        if whiten and not heads["map_head"].has_variances():
            raise TrainingError("this checkpoint's map head was fitted before imgret kept its variances; export "
                                "it with map whitening 0, or refit it: imgret train DATA --out RUN --resume "
                                f"--map-dim {config.map_dim}")
        heads["map_whiten"] = whiten
    return EmbeddingModel(model.encoder, flip_tta=flip_tta, **heads).eval()


def rng_state() -> dict:
    """Python, numpy and torch RNG states as tensors and ints (so ``weights_only`` loading works)."""
    py = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    out = {
        "rng_python": torch.tensor(py[1], dtype=torch.int64),
        "rng_numpy": torch.from_numpy(np_keys.astype(np.int64)),
        "rng_numpy_pos": int(np_pos),
        "rng_numpy_gauss": [int(np_has_gauss), float(np_gauss)],
        "rng_torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        out["rng_cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: dict) -> None:
    """Undo :func:`rng_state`."""
    random.setstate((3, tuple(int(v) for v in state["rng_python"].tolist()), None))
    has_gauss, gauss = state["rng_numpy_gauss"]
    np.random.set_state(("MT19937", state["rng_numpy"].numpy().astype(np.uint32), int(state["rng_numpy_pos"]),
                         int(has_gauss), float(gauss)))
    torch.set_rng_state(state["rng_torch"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])


def summary_of(state: dict) -> dict:
    """The training summary stored in a checkpoint (counts, losses, data folder name)."""
    return json.loads(state.get("summary", "{}"))
