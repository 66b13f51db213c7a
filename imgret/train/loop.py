"""The training loop: Adam with a one-cycle or cosine schedule, seeded, resumable, interruptible.

Each epoch trains, measures the validation loss, rewrites ``loss.csv``/``loss.json``/``loss.png``
and ``recon.png``, and saves ``last.pt`` (and ``best.pt`` when validation improved) atomically.
Shuffling and augmentation draw from generators seeded by (seed, epoch), and checkpoints carry the
optimiser, scheduler, scaler and RNG states, so a resumed run ends with the same weights as an
uninterrupted one. Ctrl-C keeps (or, during the first epoch, writes) a usable ``last.pt`` and raises
:class:`TrainingInterrupted`.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

import numpy as np
import torch
from torch.nn import functional as F

from imgret.errors import TrainingError
from imgret.train import augment
from imgret.train.checkpoint import (
    checkpoint_config,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from imgret.train.config import TrainConfig
from imgret.train.data import CachedImages, build_cache, split_paths
from imgret.train.history import write_history
from imgret.train.models import build_autoencoder, encode, to_model_input
from imgret.train.plots import loss_chart, recon_grid
from imgret.train.progress import ProgressLine


class TrainingInterrupted(TrainingError):
    """Training stopped on Ctrl-C; ``last_path`` is a checkpoint ``--resume`` can continue from."""

    def __init__(self, message: str, last_path: str | None) -> None:
        super().__init__(message)
        self.last_path = last_path


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: str
    best_path: str
    last_path: str
    epochs: int
    train_loss: float
    val_loss: float | None
    best_val_loss: float | None
    train_count: int
    val_count: int
    skipped: dict
    seconds_per_epoch: float
    device: str
    layout: str


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU; any other value is passed to ``torch.device``."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise TrainingError(f"unknown device {name!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError("--device cuda asked for, but PyTorch sees no CUDA GPU")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batch_loss(model, x: torch.Tensor, config: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction MSE of the (corrupted) input against its clean target, plus the invariance term.

    Returns ``(loss, mse)``: the objective, and its reconstruction part alone (comparable with the
    validation loss, which is reconstruction MSE)."""
    two_views = config.invariance > 0

    def view(batch: torch.Tensor) -> torch.Tensor:
        out = augment.random_view(batch, gen, min_scale=config.min_scale, rotate=config.rotate)
        if config.colour_jitter > 0:
            out = augment.colour_jitter(out, gen, amount=config.colour_jitter, hue=config.colour_jitter / 5)
        return out

    target = view(x) if (config.augment or two_views) else x
    if two_views:
        target = torch.cat([target, view(x)])
    inputs = augment.random_erase(target, gen) if config.augment else target
    if config.denoise:
        inputs = augment.add_noise(inputs, config.noise_std, gen)
    if two_views and config.recon_views == 1:
        z = model.encoder(inputs)
        target = target[: x.shape[0]]
        recon = model.decode(z[: x.shape[0]])
    else:
        recon, z = model(inputs)
    mse = F.mse_loss(recon.float(), target.float())
    loss = mse
    if two_views:
        if config.projector:
            z = model.projector(z)
        z1, z2 = z.float().chunk(2)
        if config.invariance_loss == "contrastive":
            agreement = augment.nt_xent(z1, z2, config.temperature)
        else:
            agreement = (1.0 - F.cosine_similarity(z1, z2, dim=1)).mean()
        loss = loss + config.invariance * agreement
    return loss, mse.detach()


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stream: TextIO | None = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train the autoencoder described by ``config`` into the run folder ``config.out``.

    With ``resume`` the run continues from ``last.pt`` with the settings saved in it (only
    ``workers`` and ``device`` are taken from ``config``). Progress and notes go to ``stream``
    (for example ``sys.stderr``); ``on_epoch_end(epoch, row)`` is called after each saved epoch.
    Raises :class:`TrainingError` for bad settings or no usable images, and
    :class:`TrainingInterrupted` on Ctrl-C.
    """
    say = (lambda text: (stream.write(text + "\n"), stream.flush())) if stream is not None else (lambda text: None)
    run_dir = config.out
    last_path, best_path = os.path.join(run_dir, "last.pt"), os.path.join(run_dir, "best.pt")
    state = None
    if resume:
        state = load_checkpoint(last_path)
        config = replace(checkpoint_config(state), workers=config.workers, device=config.device)
    elif os.path.exists(last_path):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    config = config.resolved()
    os.makedirs(run_dir, exist_ok=True)
    config.save(run_dir)
    device = pick_device(config.device)
    use_cuda = device.type == "cuda"
    use_amp = use_cuda and config.amp
    seed_everything(config.seed)

    split = split_paths(config)
    all_paths = list(dict.fromkeys(split.train + split.val))
    if not all_paths:
        raise TrainingError(f"no pictures found in {config.data}")
    bar = ProgressLine(stream, "decoding", len(all_paths))
    cache = build_cache(all_paths, config.image_size, os.path.join(run_dir, "cache"),
                        threads=max(1, config.workers), progress=lambda done, _total: bar.update(done))
    bar.close()
    if cache.skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(cache.skipped.items()))
        say(f"skipped {sum(cache.skipped.values())} unreadable pictures ({reasons})")
    train_set = CachedImages(cache.npy_path, cache.indices(split.train))
    val_set = CachedImages(cache.npy_path, cache.indices(split.val))
    if len(train_set) == 0:
        raise TrainingError(f"no readable training pictures in {config.data}")
    say(f"{len(train_set)} training and {len(val_set)} validation pictures ({split.layout}); "
        f"arch {config.arch}, latent {config.latent_dim}, {config.image_size}px, device {device.type}"
        + (", AMP" if use_amp else ""))

    model = build_autoencoder(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = math.ceil(len(train_set) / config.batch_size)
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.epochs * steps)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict] = []
    best_val = math.inf
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        start_epoch, best_val = int(state["epoch"]), float(state["best_val_loss"])
        if start_epoch < config.epochs:
            if "optimizer" not in state:
                raise TrainingError(f"{last_path} holds weights only (no optimiser state); training cannot "
                                    "continue from it")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            restore_rng_state(state)
        history = json.loads(state["history"])
        say(f"resuming after epoch {start_epoch} of {config.epochs}")

    def summary() -> dict:
        last = history[-1] if history else {}
        return {"count": len(train_set), "val_count": len(val_set), "image_size": config.image_size,
                "epochs": len(history), "final_train_loss": last.get("train_loss"),
                "final_val_loss": last.get("val_loss"), "best_val_loss": None if math.isinf(best_val) else best_val,
                "data": os.path.basename(os.path.abspath(config.data)), "layout": split.layout,
                "skipped": sum(cache.skipped.values())}

    def snapshot(epoch: int, interrupted: bool = False) -> dict:
        return {"config": config.to_json(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                "best_val_loss": best_val, "history": json.dumps(history), "summary": json.dumps(summary()),
                "interrupted": int(interrupted), **rng_state()}

    loader_args = {"batch_size": config.batch_size, "num_workers": config.workers, "pin_memory": use_cuda,
                   "persistent_workers": False}
    epoch_seconds: list[float] = []
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.monotonic()
            shuffle_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
            aug_gen = torch.Generator().manual_seed(config.seed * 7_919 + epoch + 1)
            loader = torch.utils.data.DataLoader(train_set, shuffle=True, generator=shuffle_gen, **loader_args)
            model.train()
            bar = ProgressLine(stream, f"epoch {epoch + 1}/{config.epochs}", len(loader))
            total, total_mse, seen = 0.0, 0.0, 0
            for i, batch in enumerate(loader, 1):
                x = to_model_input(batch.to(device, non_blocking=use_cuda))
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                    loss, mse = _batch_loss(model, x, config, aug_gen)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                total += float(loss.detach()) * len(batch)
                total_mse += float(mse) * len(batch)
                seen += len(batch)
                bar.update(i, total / seen)
            train_loss = total / seen
            if not math.isfinite(train_loss):
                raise TrainingError(f"training loss became {train_loss} in epoch {epoch + 1}; try a lower --lr")
            val_loss, originals, recons = _validate(model, val_set if len(val_set) else train_set, device,
                                                    config, use_amp, has_val=len(val_set) > 0)
            seconds = time.monotonic() - started
            epoch_seconds.append(seconds)
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_mse": total_mse / seen, "val_loss": val_loss,
                   "lr": scheduler.get_last_lr()[0], "seconds": round(seconds, 3)}
            history.append(row)
            score = val_loss if val_loss is not None else train_loss
            improved = score < best_val
            best_val = min(best_val, score)
            bar.close(f"val {val_loss:.5f}" if val_loss is not None else "")
            write_history(run_dir, history)
            loss_chart(history, os.path.join(run_dir, "loss.png"))
            recon_grid(originals, recons, os.path.join(run_dir, "recon.png"))
            state = snapshot(epoch + 1)
            save_checkpoint(last_path, state)
            if improved:
                save_checkpoint(best_path, state)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except KeyboardInterrupt:
        done = len(history)
        # Mid-epoch weights cannot be resumed exactly; keep the last epoch's checkpoint when there is one.
        if not os.path.exists(last_path):
            save_checkpoint(last_path, snapshot(done, interrupted=True))
        raise TrainingInterrupted(
            f"interrupted after {done} of {config.epochs} epochs; continue with --resume --out {run_dir}",
            last_path) from None
    if config.graph_dim or config.map_dim:
        try:
            _fit_heads(run_dir, config, device, [train_set, val_set], stream, say)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while fitting the heads; finish them with --resume --out "
                                      f"{run_dir}", last_path) from None
    last = history[-1]
    return TrainResult(run_dir, best_path if os.path.exists(best_path) else last_path, last_path, len(history),
                       last["train_loss"], last["val_loss"], None if math.isinf(best_val) else best_val,
                       len(train_set), len(val_set), dict(cache.skipped),
                       float(np.mean(epoch_seconds)) if epoch_seconds else 0.0, device.type, split.layout)


HEAD_SETTINGS = {"map": ("map_dim", "map_weight", "map_whiten"),
                 "graph": ("graph_dim", "graph_neighbours", "graph_epochs", "graph_weight")}


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
    last_path = os.path.join(run_dir, "last.pt")
    state = load_checkpoint(last_path)
    config = checkpoint_config(state)
    if int(state["epoch"]) < config.epochs:
        raise TrainingError(f"{run_dir} has not finished its epochs; finish it with --resume first")
    if config.graph_dim and any(name in settings for name in HEAD_SETTINGS["graph"]):
        raise TrainingError(f"{run_dir} already has a graph head; its settings cannot be changed")
    refit_map = bool(config.map_dim) and any(name in settings for name in HEAD_SETTINGS["map"])
    new = replace(config, **settings).resolved()
    head_keys = ("map_head.", "graph_head.")
    for name in ("best.pt", "last.pt"):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        state = load_checkpoint(path)
        if refit_map:  # dropped, so the new head starts unfitted and is fitted below
            state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("map_head.")}
        model = build_autoencoder(new)
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if unexpected or any(not key.startswith(head_keys) for key in missing):
            raise TrainingError(f"{path} does not match its own settings (missing {missing}, unexpected {unexpected})")
        state["model"], state["config"] = model.state_dict(), new.to_json()
        save_checkpoint(path, state)
    new.save(run_dir)
    return train(replace(new, out=run_dir, device=device, workers=workers), resume=True, stream=stream)


@torch.no_grad()
def _encoded(model, datasets: list[CachedImages], device, batch_size: int, *, with_map: bool):
    """Each batch's codes, each averaged with its mirror's (as exports with flip_tta do), and with
    ``with_map`` its last feature maps (the mirror's flipped back); the heads are fitted on these."""
    model.eval()
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


def _fit_heads(run_dir: str, config: TrainConfig, device, datasets: list[CachedImages],
               stream: TextIO | None, say) -> None:
    """Fit the map and graph heads of ``best.pt`` (the checkpoint ``imgret export`` takes) where they
    are not fitted yet; ``last.pt`` gets them too when it is the same epoch. One call fits one epoch's
    heads: a ``last.pt`` of a later epoch is left for the next ``--resume``, so a run does not pay
    for two graph-head fits (about 20 minutes each for 60,000 pictures on two CPU cores) when only
    one is exported."""
    from imgret.train.graph import fit_graph_head
    from imgret.train.maphead import fit_map_head

    done: dict[int, tuple[dict, dict]] = {}
    for name in ("best.pt", "last.pt"):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            continue
        state = load_checkpoint(path)
        model = build_autoencoder(config).to(device)
        model.load_state_dict(state["model"])
        heads = [h for h in (getattr(model, "map_head", None), getattr(model, "graph_head", None)) if h is not None]
        if all(int(h.fitted) for h in heads):
            continue
        epoch = int(state["epoch"])
        if done and epoch not in done:
            say(f"{name} (epoch {epoch}) keeps its heads unfitted: export uses best.pt; to export {name}, "
                f"fit them with imgret train DATA --out {run_dir} --resume")
            continue
        if epoch not in done:
            reports = {}
            fit_map = bool(config.map_dim) and not int(model.map_head.fitted)
            fit_graph = bool(config.graph_dim) and not int(model.graph_head.fitted)
            # One pass of the encoder over the pictures serves both heads: the map head's fit streams
            # the feature maps while the codes the graph head needs are kept.
            codes: list[torch.Tensor] = []
            batches = _encoded(model, datasets, device, max(config.batch_size, 256), with_map=fit_map)
            if fit_map:
                say(f"map head for {name}: principal axes of the encoder's feature maps")
                try:
                    reports["map"] = fit_map_head(_maps_keeping_codes(batches, codes if fit_graph else None),
                                                 model.map_head)
                except ValueError as exc:
                    raise TrainingError(f"{exc} in {run_dir} (train without --map-dim)") from None
                say(f"map head for {name}: {reports['map']['points']} pictures, {reports['map']['features']} "
                    f"features, {reports['map']['explained_variance']:.0%} of their variance kept, "
                    f"{reports['map']['seconds']} s")
            if fit_graph:
                codes = torch.cat(codes) if fit_map else torch.cat([F.normalize(z, dim=1) for z, _ in batches])
                if codes.shape[0] < 3:
                    raise TrainingError(f"the graph head needs at least 3 readable pictures; {run_dir} has "
                                        f"{codes.shape[0]} (train without --graph-dim)")
                bar = ProgressLine(stream, f"graph head ({name})", config.graph_epochs)
                reports["graph"] = fit_graph_head(codes, model.graph_head, neighbours=config.graph_neighbours,
                                                  epochs=config.graph_epochs, seed=config.seed,
                                                  progress=bar.update)
                bar.close()
                say(f"graph head for {name}: {reports['graph']['points']} pictures, {reports['graph']['edges']} "
                    f"edges, {reports['graph']['seconds']} s")
            done[epoch] = ({k: v.detach().cpu() for k, v in model.state_dict().items()}, reports)
        state["model"], reports = done[epoch]
        for kind, report in reports.items():
            state[kind] = json.dumps(report)
        save_checkpoint(path, state)


@torch.no_grad()
def _validate(model, dataset: CachedImages, device, config: TrainConfig, use_amp: bool, *, has_val: bool):
    """Mean validation MSE (None without a validation set) and a few pictures for ``recon.png``."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=False,
                                         num_workers=0 if not has_val else config.workers)
    total, seen = 0.0, 0
    # Show pictures spread over the whole set, not the first few (often near-identical neighbours).
    n = len(dataset)
    show = torch.linspace(0, n - 1, min(config.recon_count, n)).round().long().tolist() if n else []
    picked = torch.stack([torch.as_tensor(np.asarray(dataset[i])) for i in show]) if show else None
    originals = recons = None
    if picked is not None:
        with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            x = to_model_input(picked.to(device))
            recon, _ = model(x)
        originals, recons = _to_uint8(x), _to_uint8(recon)
    for batch in loader:
        if not has_val:
            break
        x = to_model_input(batch.to(device))
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            recon, _ = model(x)
        total += float(F.mse_loss(recon.float(), x, reduction="sum")) / x[0].numel()
        seen += len(batch)
    return (total / seen if has_val else None), originals, recons
