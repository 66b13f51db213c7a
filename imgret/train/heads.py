"""The heads fitted after the epochs (map head: a PCA of the last feature map; graph head: a small
net on the neighbour graph of the codes), fitted in one place, :func:`fit_heads`, whether a run has
just finished its epochs (:func:`imgret.train.train`) or a finished run is given heads later
(:func:`add_heads`).

Heads are fitted for ``best.pt`` (the checkpoint ``imgret export`` takes) and, when it is the same
epoch, ``last.pt``. A ``last.pt`` of a later epoch is left for the next ``--resume``, so a run does not
pay for two graph-head fits (about 20 minutes each for 60,000 pictures on two CPU cores) when only
one is exported.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from typing import TextIO

import torch
from torch.nn import functional as F

from imgret.errors import TrainingError
from imgret.train.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from imgret.train.config import HEAD_SETTINGS, TrainConfig
from imgret.train.data import CachedImages, RunPictures, load_pictures
from imgret.train.device import pick_device
from imgret.train.models import build_autoencoder, encode, to_model_input
from imgret.train.notes import Notes
from imgret.train.result import TrainResult

HEAD_KEYS = ("map_head.", "graph_head.")


def fit_heads(run_dir: str, config: TrainConfig, *, pictures: RunPictures | None = None,
              stream: TextIO | None = None, refit_map: bool = False) -> None:
    """Fit the map and graph heads ``config`` asks for in the run's ``best.pt`` and ``last.pt``
    where they are not fitted yet, on the run's pictures (``pictures``, else decoded from
    ``config.data`` through the run's cache). A checkpoint whose head settings differ from
    ``config`` takes ``config``'s; ``refit_map`` fits its map head again. Notes go to ``stream``.
    Raises :class:`TrainingError` when there are too few pictures for a head."""
    notes = Notes(stream)
    device = pick_device(config.device)
    done: dict[int, tuple[dict, dict]] = {}  # epoch -> (fitted weights, reports)
    for name in ("best.pt", "last.pt"):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        state = load_checkpoint(path)
        model = _model_with_heads(state, config, refit_map, path)
        changed = _head_settings(checkpoint_config(state)) != _head_settings(config)
        if not _all_fitted(model):
            epoch = int(state["epoch"])
            if done and epoch not in done:
                notes.say(f"{name} (epoch {epoch}) keeps its heads unfitted: export uses best.pt; to export {name}, "
                          f"fit them with imgret train DATA --out {run_dir} --resume")
            else:
                if epoch not in done:
                    if pictures is None:
                        pictures = load_pictures(config, run_dir, notes.progress("decoding", "pictures"))
                    reports = _fit(model.to(device), config, pictures.all(), path, notes)
                    done[epoch] = ({k: v.detach().cpu() for k, v in model.state_dict().items()}, reports)
                model.load_state_dict(done[epoch][0])
                for kind, report in done[epoch][1].items():
                    state[kind] = json.dumps(report)
                changed = True
        if changed:  # the checkpoint keeps its own settings but the heads'
            stored = replace(checkpoint_config(state), **_head_settings(config))
            state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            state["config"] = stored.to_json()
            save_checkpoint(path, state)


def _head_settings(config: TrainConfig) -> dict:
    return {name: getattr(config, name) for names in HEAD_SETTINGS.values() for name in names}


def _all_fitted(model) -> bool:
    heads = [getattr(model, "map_head", None), getattr(model, "graph_head", None)]
    return all(int(h.fitted) for h in heads if h is not None)


def _model_with_heads(state: dict, config: TrainConfig, refit_map: bool, path: str):
    """The checkpoint's autoencoder built with ``config``'s heads; a head the checkpoint does not
    have (or, with ``refit_map``, its map head) starts unfitted."""
    weights = state["model"]
    if refit_map:
        weights = {k: v for k, v in weights.items() if not k.startswith("map_head.")}
    model = build_autoencoder(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not key.startswith(HEAD_KEYS) for key in missing):
        raise TrainingError(f"{path} does not match its own settings (missing {missing}, unexpected {unexpected})")
    return model


def _fit(model, config: TrainConfig, datasets: list[CachedImages], path: str, notes: Notes) -> dict:
    """Fit the model's unfitted heads; one pass of the encoder over the pictures serves both (the map
    head's fit streams the feature maps while the codes the graph head needs are kept)."""
    reports = {}
    fit_map = bool(config.map_dim) and not int(model.map_head.fitted)
    fit_graph = bool(config.graph_dim) and not int(model.graph_head.fitted)
    codes: list[torch.Tensor] = []
    batches = _encoded(model, datasets, max(config.batch_size, 256), with_map=fit_map)
    if fit_map:
        reports["map"] = _fit_map(model, _maps_keeping_codes(batches, codes if fit_graph else None), path, notes)
    if fit_graph:
        unit = torch.cat(codes) if fit_map else torch.cat([F.normalize(z, dim=1) for z, _ in batches])
        reports["graph"] = _fit_graph(model, unit, config, path, notes)
    return reports


def _fit_map(model, maps, path: str, notes: Notes) -> dict:
    from imgret.train.maphead import fit_map_head

    name, run_dir = os.path.basename(path), os.path.dirname(path)
    notes.say(f"map head for {name}: principal axes of the encoder's feature maps")
    try:
        report = fit_map_head(maps, model.map_head)
    except ValueError as exc:
        raise TrainingError(f"{exc} in {run_dir} (train without --map-dim)") from None
    notes.say(f"map head for {name}: {report['points']} pictures, {report['features']} features, "
              f"{report['explained_variance']:.0%} of their variance kept, {report['seconds']} s")
    return report


def _fit_graph(model, codes: torch.Tensor, config: TrainConfig, path: str, notes: Notes) -> dict:
    from imgret.train.graph import fit_graph_head

    name, run_dir = os.path.basename(path), os.path.dirname(path)
    if codes.shape[0] < 3:
        raise TrainingError(f"the graph head needs at least 3 readable pictures; {run_dir} has "
                            f"{codes.shape[0]} (train without --graph-dim)")
    bar = notes.progress(f"graph head ({name})", "passes")
    report = fit_graph_head(codes, model.graph_head, neighbours=config.graph_neighbours,
                            epochs=config.graph_epochs, seed=config.seed, progress=bar)
    bar.close()
    notes.say(f"graph head for {name}: {report['points']} pictures, {report['edges']} edges, {report['seconds']} s")
    return report


@torch.no_grad()
def _encoded(model, datasets: list[CachedImages], batch_size: int, *, with_map: bool):
    """Each batch's codes, each averaged with its mirror's (as exports with flip_tta do), and with
    ``with_map`` its last feature maps (the mirror's flipped back); the heads are fitted on these."""
    model.eval()
    device = next(model.parameters()).device
    for dataset in datasets:
        for batch in torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False):
            z, fmap = encode(model.encoder, to_model_input(batch.to(device)), flip_tta=True, with_map=with_map)
            yield z.float(), (fmap.float() if with_map else None)


def _maps_keeping_codes(batches, codes: list[torch.Tensor] | None):
    """The feature maps of ``_encoded`` batches; their unit codes go into ``codes`` on the way."""
    for z, fmap in batches:
        if codes is not None:
            codes.append(F.normalize(z, dim=1))
        yield fmap


def add_heads(run_dir: str | os.PathLike, *, stream: TextIO | None = None, device: str = "auto", workers: int = 0,
              **settings) -> TrainResult:
    """Give a finished run the heads it was trained without, fitted on its pictures with the encoder
    as it is (no epochs run). ``settings`` are the head fields of :class:`TrainConfig` (``map_dim``,
    ``map_weight``, ``graph_dim``, ...). A map head the run already has is fitted again with the new
    settings (a PCA: about a minute for 60,000 pictures); a graph head cannot be changed.

    Example: ``add_heads("runs/photos", map_dim=256)``."""
    run_dir = os.fspath(run_dir)
    allowed = {name for names in HEAD_SETTINGS.values() for name in names}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise TrainingError(f"not a head setting: {', '.join(unknown)}")
    last = load_checkpoint(os.path.join(run_dir, "last.pt"))
    config = checkpoint_config(last)
    if int(last["epoch"]) < config.epochs:
        raise TrainingError(f"{run_dir} has not finished its epochs; finish it with --resume first")
    if config.graph_dim and any(name in settings for name in HEAD_SETTINGS["graph"]):
        raise TrainingError(f"{run_dir} already has a graph head; its settings cannot be changed")
    refit_map = bool(config.map_dim) and any(name in settings for name in HEAD_SETTINGS["map"])
    new = replace(config, **settings).resolved()
    new.save(run_dir)
    new = replace(new, device=device, workers=workers)
    pictures = load_pictures(new, run_dir, Notes(stream).progress("decoding", "pictures"))
    fit_heads(run_dir, new, pictures=pictures, stream=stream, refit_map=refit_map)
    return finished_result(run_dir, last, pictures, pick_device(device).type)


def finished_result(run_dir: str, last: dict, pictures: RunPictures, device: str,
                    seconds_per_epoch: float = 0.0) -> TrainResult:
    """The :class:`TrainResult` of a run whose ``last.pt`` is (or holds the ``history`` and
    ``best_val_loss`` of) ``last``."""
    history = json.loads(last["history"])
    best_val = float(last["best_val_loss"])
    last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
    row = history[-1]
    return TrainResult(run_dir, best_path if os.path.exists(best_path) else last_path, last_path, len(history),
                       row["train_loss"], row["val_loss"], None if math.isinf(best_val) else best_val,
                       len(pictures.train), len(pictures.val), dict(pictures.skipped), seconds_per_epoch,
                       device, pictures.layout)
