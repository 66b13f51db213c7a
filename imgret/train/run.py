"""The training run: Adam with a one-cycle or cosine schedule, seeded, resumable, interruptible.

Each epoch (:mod:`imgret.train.epoch`) trains, measures the validation loss, rewrites
``loss.csv``/``loss.json``/``loss.png`` and ``recon.png``, and saves ``last.pt`` (and ``best.pt`` when
validation improved) atomically. Checkpoints carry the optimiser, scheduler, scaler and RNG states,
so a resumed run ends with the same weights as an uninterrupted one. Ctrl-C keeps (or, during the
first epoch, writes) a usable ``last.pt`` and raises :class:`TrainingInterrupted`. After the epochs,
:func:`imgret.train.heads.fit_heads` fits the heads the config asks for.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TextIO

import numpy as np

from imgret.errors import TrainingError
from imgret.train.checkpoint import (
    checkpoint_config,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from imgret.train.config import DEFAULT_IMAGE_SIZE, TrainConfig
from imgret.train.data import RunPictures, load_pictures, sized_to_pictures
from imgret.train.device import pick_device, seed_everything
from imgret.train.epoch import Optimisation, build_optimisation, train_epoch, validate
from imgret.train.heads import finished_result, fit_heads
from imgret.train.history import write_history
from imgret.train.models import build_autoencoder
from imgret.train.notes import Notes
from imgret.train.plots import loss_chart, recon_grid
from imgret.train.result import TrainingInterrupted, TrainResult
from imgret.train.spread import collapse_warning, embed_uint8

__all__ = ["TrainResult", "TrainingInterrupted", "train"]


@dataclass
class Run:
    """A run in progress: its settings, pictures, optimisation and the epochs done so far."""

    run_dir: str
    config: TrainConfig
    pictures: RunPictures
    opt: Optimisation
    history: list[dict] = field(default_factory=list)
    best_val: float = math.inf
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def last_path(self) -> str:
        return os.path.join(self.run_dir, "last.pt")

    def summary(self) -> dict:
        """Counts and losses, stored in each checkpoint and carried into the exported model."""
        last = self.history[-1] if self.history else {}
        config = self.config
        return {"count": len(self.pictures.train), "val_count": len(self.pictures.val),
                "image_size": config.image_size, "epochs": len(self.history),
                "final_train_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
                "best_val_loss": None if math.isinf(self.best_val) else self.best_val,
                "data": os.path.basename(os.path.abspath(config.data)), "layout": self.pictures.layout,
                "skipped": sum(self.pictures.skipped.values())}

    def snapshot(self, epoch: int, interrupted: bool = False) -> dict:
        """Everything a checkpoint holds after ``epoch`` epochs."""
        opt = self.opt
        return {"config": self.config.to_json(), "model": opt.model.state_dict(),
                "optimizer": opt.optimizer.state_dict(), "scheduler": opt.scheduler.state_dict(),
                "scaler": opt.scaler.state_dict(), "epoch": epoch, "best_val_loss": self.best_val,
                "history": json.dumps(self.history), "summary": json.dumps(self.summary()),
                "interrupted": int(interrupted), **rng_state()}


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
    notes = Notes(stream)
    run_dir = config.out
    config, state = _settings(config, run_dir, resume)
    notes.say(_first_line(config))
    device = pick_device(config.device)
    seed_everything(config.seed)
    bar = notes.progress("decoding", "pictures")
    pictures = load_pictures(config, run_dir, bar)
    bar.close()
    if pictures.skipped:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(pictures.skipped.items()))
        notes.say(f"skipped {sum(pictures.skipped.values())} unreadable pictures ({reasons})")
    notes.say(f"{len(pictures.train)} training and {len(pictures.val)} validation pictures ({pictures.layout}); "
              f"device {device.type}"
              + (", AMP" if device.type == "cuda" and config.amp else ""))
    steps = math.ceil(len(pictures.train) / config.batch_size)
    run = Run(run_dir, config, pictures, build_optimisation(config, build_autoencoder(config), device, steps))
    if state is not None:
        _restore(run, state)
        notes.say(f"resuming after epoch {len(run.history)} of {config.epochs}")
    _epochs(run, notes, on_epoch_end)
    if config.graph_dim or config.map_dim:
        try:
            fit_heads(run_dir, config, pictures=pictures, stream=stream)
        except KeyboardInterrupt:
            raise TrainingInterrupted(f"interrupted while fitting the heads; finish them with --resume --out "
                                      f"{run_dir}", run.last_path) from None
    _warn_if_collapsed(run_dir, config, pictures, notes)
    seconds = float(np.mean(run.epoch_seconds)) if run.epoch_seconds else 0.0
    done = {"history": json.dumps(run.history), "best_val_loss": run.best_val}
    return finished_result(run_dir, done, pictures, device.type, seconds)


def _settings(config: TrainConfig, run_dir: str, resume: bool) -> tuple[TrainConfig, dict | None]:
    """The run's resolved settings (a resumed run's own, but for workers and device) and, on resume,
    its ``last.pt``; the settings are saved as ``config.json``."""
    last_path = os.path.join(run_dir, "last.pt")
    state = None
    if resume:
        state = load_checkpoint(last_path)
        config = replace(checkpoint_config(state), workers=config.workers, device=config.device)
    elif os.path.exists(last_path):
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    else:
        config = sized_to_pictures(config)
    config = config.resolved()
    os.makedirs(run_dir, exist_ok=True)
    config.save(run_dir)
    return config, state


def _warn_if_collapsed(run_dir: str, config: TrainConfig, pictures: RunPictures, notes: Notes) -> None:
    """One warning line when the exported embedding would give every picture nearly the same vector."""
    from imgret.train.checkpoint import load_encoder

    shown = pictures.val if len(pictures.val) else pictures.train
    images = shown.batch(256).numpy()
    warning = collapse_warning(embed_uint8(load_encoder(run_dir, flip_tta=bool(config.flip_tta)), images),
                               "validation pictures" if len(pictures.val) else "training pictures")
    if warning:
        notes.say(f"warning: {warning}")


def _first_line(config: TrainConfig) -> str:
    """What the run trains, in one line: the recipe, architecture and size (and why that size)."""
    size = f"{config.image_size}px"
    if config.typical_size and config.image_size < DEFAULT_IMAGE_SIZE:
        size += (f" (the pictures' median size is {config.typical_size} px, under the default "
                 f"{DEFAULT_IMAGE_SIZE}; --image-size overrides)")
    return f"recipe {config.recipe}: arch {config.arch}, latent {config.latent_dim}, width {config.width}, {size}"


def _restore(run: Run, state: dict) -> None:
    """Continue from a checkpoint: weights always; optimiser, schedule and RNG states when epochs
    remain (a finished run copied without them can still have its heads fitted). A run stopped in
    its first epoch has nothing worth keeping: it starts again, as an uninterrupted run would."""
    if int(state["epoch"]) == 0:
        return
    opt = run.opt
    opt.model.load_state_dict(state["model"])
    epoch, run.best_val = int(state["epoch"]), float(state["best_val_loss"])
    if epoch < run.config.epochs:
        if "optimizer" not in state:
            raise TrainingError(f"{run.last_path} holds weights only (no optimiser state); training cannot "
                                "continue from it")
        opt.optimizer.load_state_dict(state["optimizer"])
        opt.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            opt.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state)
    run.history = json.loads(state["history"])


def _epochs(run: Run, notes: Notes, on_epoch_end: Callable[[int, dict], None] | None) -> None:
    """The remaining epochs; on Ctrl-C keep a usable ``last.pt`` and raise :class:`TrainingInterrupted`."""
    config = run.config
    try:
        for epoch in range(len(run.history), config.epochs):
            row = _epoch(run, epoch, notes)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, row)
    except KeyboardInterrupt:
        done = len(run.history)
        # Mid-epoch weights cannot be resumed exactly; keep the last epoch's checkpoint when there is one.
        if not os.path.exists(run.last_path):
            save_checkpoint(run.last_path, run.snapshot(done, interrupted=True))
        raise TrainingInterrupted(
            f"interrupted after {done} of {config.epochs} epochs; continue with --resume --out {run.run_dir}",
            run.last_path) from None


def _epoch(run: Run, epoch: int, notes: Notes) -> dict:
    """Train and validate one epoch, then write its history, plots and checkpoints; return its row."""
    config, pictures = run.config, run.pictures
    started = time.monotonic()
    bar = notes.progress(f"epoch {epoch + 1}/{config.epochs}", "batches")
    train_loss, train_mse = train_epoch(run.opt, pictures.train, config, epoch, bar)
    has_val = len(pictures.val) > 0
    val_loss, originals, recons = validate(run.opt, pictures.val if has_val else pictures.train, config,
                                           has_val=has_val)
    seconds = time.monotonic() - started
    run.epoch_seconds.append(seconds)
    row = {"epoch": epoch + 1, "train_loss": train_loss, "train_mse": train_mse, "val_loss": val_loss,
           "lr": run.opt.scheduler.get_last_lr()[0], "seconds": round(seconds, 3)}
    run.history.append(row)
    score = val_loss if val_loss is not None else train_loss
    improved = score < run.best_val
    run.best_val = min(run.best_val, score)
    bar.close(f"val {val_loss:.5f}" if val_loss is not None else "")
    write_history(run.run_dir, run.history)
    loss_chart(run.history, os.path.join(run.run_dir, "loss.png"))
    recon_grid(originals, recons, os.path.join(run.run_dir, "recon.png"), epoch=epoch + 1)
    state = run.snapshot(epoch + 1)
    save_checkpoint(run.last_path, state)
    if improved:
        save_checkpoint(os.path.join(run.run_dir, "best.pt"), state)
    return row
