"""One epoch: the loss of a batch, a pass over the training pictures, and the validation pass.

Shuffling and augmentation draw from generators seeded by (seed, epoch), so an epoch run after a
resume draws exactly what it would have drawn in an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from imgret.errors import TrainingError
from imgret.runtime.progress import ProgressCallback
from imgret.train import augment
from imgret.train.config import TrainConfig
from imgret.train.data import CachedImages
from imgret.train.models import to_model_input


@dataclass
class Optimisation:
    """The model and everything that steps it, on one device."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool

    def autocast(self):
        """Mixed precision where it was asked for (CUDA only)."""
        return torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.use_amp)


def build_optimisation(config: TrainConfig, model: torch.nn.Module, device: torch.device,
                       steps_per_epoch: int) -> Optimisation:
    """Adam with the config's one-cycle or cosine schedule over all the run's steps."""
    model = model.to(device)
    use_amp = device.type == "cuda" and config.amp
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * steps_per_epoch
    if config.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    return Optimisation(model, optimizer, scheduler, scaler, device, use_amp)


def batch_loss(model, x: torch.Tensor, config: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Reconstruction MSE of the (corrupted) input against its clean target, plus the invariance term.

    Returns ``(loss, mse)``: the objective, and its reconstruction part alone (comparable with the
    validation loss, which is reconstruction MSE)."""
    two_views = config.invariance > 0
    target = _view(x, config, gen) if (config.augment or two_views) else x
    if two_views:
        target = torch.cat([target, _view(x, config, gen)])
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
        loss = loss + config.invariance * _agreement(model, z, config)
    return loss, mse.detach()


def _view(batch: torch.Tensor, config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    out = augment.random_view(batch, gen, min_scale=config.min_scale, rotate=config.rotate)
    if config.colour_jitter > 0:
        out = augment.colour_jitter(out, gen, amount=config.colour_jitter, hue=config.colour_jitter / 5)
    return augment.heavy_edits(out, gen, rot90=config.rot90, grey=config.greyscale, caption_p=config.caption,
                               border_p=config.border, blur_p=config.blur, canvas_p=config.canvas)


def _agreement(model, z: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """How far the two views' codes (first and second half of ``z``) are from agreeing."""
    if config.projector:
        z = model.projector(z)
    z1, z2 = z.float().chunk(2)
    if config.invariance_loss == "contrastive":
        return augment.nt_xent(z1, z2, config.temperature)
    return (1.0 - F.cosine_similarity(z1, z2, dim=1)).mean()


def train_epoch(opt: Optimisation, dataset: CachedImages, config: TrainConfig, epoch: int,
                progress: ProgressCallback) -> tuple[float, float]:
    """One pass over ``dataset`` (epoch counted from 0); returns the mean objective and the mean
    reconstruction MSE. Raises :class:`TrainingError` when the loss is no longer finite."""
    shuffle_gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    aug_gen = torch.Generator().manual_seed(config.seed * 7_919 + epoch + 1)
    use_cuda = opt.device.type == "cuda"
    loader = torch.utils.data.DataLoader(dataset, shuffle=True, generator=shuffle_gen, batch_size=config.batch_size,
                                         num_workers=config.workers, pin_memory=use_cuda, persistent_workers=False)
    opt.model.train()
    total, total_mse, seen = 0.0, 0.0, 0
    for i, batch in enumerate(loader, 1):
        x = to_model_input(batch.to(opt.device, non_blocking=use_cuda))
        with opt.autocast():
            loss, mse = batch_loss(opt.model, x, config, aug_gen)
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        opt.scheduler.step()
        total += float(loss.detach()) * len(batch)
        total_mse += float(mse) * len(batch)
        seen += len(batch)
        progress(i, len(loader), f"loss {total / seen:.5f}")
    train_loss = total / seen
    if not math.isfinite(train_loss):
        raise TrainingError(f"training loss became {train_loss} in epoch {epoch + 1}; try a lower --lr")
    return train_loss, total_mse / seen


@torch.no_grad()
def validate(opt: Optimisation, dataset: CachedImages, config: TrainConfig, *, has_val: bool):
    """Mean validation MSE (None without a validation set) and a few pictures for ``recon.png``
    (uint8 originals and reconstructions, or None for an empty set)."""
    opt.model.eval()
    total, seen = 0.0, 0
    if has_val:
        loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=False,
                                             num_workers=config.workers)
        for batch in loader:
            x = to_model_input(batch.to(opt.device))
            with opt.autocast():
                recon, _ = opt.model(x)
            total += float(F.mse_loss(recon.float(), x, reduction="sum")) / x[0].numel()
            seen += len(batch)
    originals, recons = _shown(opt, dataset, config.recon_count)
    return (total / seen if has_val else None), originals, recons


def _shown(opt: Optimisation, dataset: CachedImages, count: int):
    # Pictures spread over the whole set, not the first few (often near-identical neighbours).
    n = len(dataset)
    if not n:
        return None, None
    show = torch.linspace(0, n - 1, min(count, n)).round().long().tolist()
    x = to_model_input(torch.stack([torch.as_tensor(np.asarray(dataset[i])) for i in show]).to(opt.device))
    with opt.autocast():
        recon, _ = opt.model(x)
    return _to_uint8(x), _to_uint8(recon)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
