"""The training configuration: one dataclass, saved as ``config.json`` in the run folder.

Defaults that depend on the architecture (latent size) are filled in by :meth:`TrainConfig.resolved`,
so the saved JSON always states every value the run used.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from imgret.errors import TrainingError

ARCHS = ("conv", "seed")
SCHEDULES = ("onecycle", "cosine")
DEFAULT_LATENT = {"conv": 128, "seed": 16}
DEFAULT_IMAGE_SIZE = 128
# The conv encoder halves the picture four times, the seed encoder twice.
SIZE_MULTIPLE = {"conv": 16, "seed": 4}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; paths are as the user gave them."""

    data: str
    out: str
    arch: str = "conv"
    latent_dim: int = 0  # 0: the architecture's default (conv 128, seed 16)
    image_size: int = DEFAULT_IMAGE_SIZE
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    val_split: float = 0.25
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    amp: bool = True  # only ever used on CUDA
    max_images: int = 0  # 0: no cap
    denoise: bool = False
    noise_std: float = 0.1
    augment: bool = False
    invariance: float = 0.0
    invariance_loss: str = "cosine"  # "cosine": 1 - cos of the two views; "contrastive": InfoNCE in the batch
    temperature: float = 0.2
    colour_jitter: float = 0.0  # views: brightness/contrast/saturation 1 ± this, hue turned by a fifth of it
    rotate: float = 0.0  # views: rotation up to this many degrees either way
    min_scale: float = 0.75  # views: smallest zoom (share of the side kept)
    projector: bool = False  # agreement term on a training-only head above the embedding
    decoder: str = "full"  # "full", "light" (conv: about 4x cheaper to train) or "half" (half of light; seed: half the port's)
    recon_views: int = 2  # with two views: reconstruct both (2) or only the first (1, half the decoder's cost)
    width: int = 32  # encoder channels of the first stage (each later stage doubles them)
    map_dim: int = 0  # > 0: after the epochs, fit a PCA of the encoder's last feature map to this size (imgret.train.maphead)
    map_weight: float = 1.0  # its share beside the code in the exported embedding
    map_whiten: float = 0.35  # its axes scaled by variance ** -this at export (0: plain PCA, 0.5: full whitening)
    graph_dim: int = 0  # > 0: after the epochs, fit a neighbour-graph head of this size (imgret.train.graph)
    graph_neighbours: int = 15
    graph_epochs: int = 10
    graph_weight: float = 1.0  # the head's share beside the code in the exported embedding
    recon_count: int = 8

    def resolved(self) -> TrainConfig:
        """Fill architecture defaults and check values; raise :class:`TrainingError` on bad ones."""
        if self.arch not in ARCHS:
            raise TrainingError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        latent = self.latent_dim or DEFAULT_LATENT[self.arch]
        multiple = SIZE_MULTIPLE[self.arch]
        if self.image_size < multiple or self.image_size % multiple:
            raise TrainingError(f"--image-size for arch {self.arch} must be a multiple of {multiple}")
        if not 0.0 <= self.val_split < 1.0:
            raise TrainingError("--val-split must be in [0, 1)")
        if self.epochs < 1 or self.batch_size < 1 or latent < 1 or self.lr <= 0:
            raise TrainingError("epochs, batch size, latent size and learning rate must be positive")
        if self.decoder not in ("full", "light", "half"):
            raise TrainingError("--decoder must be full, light or half")
        if self.recon_views not in (1, 2):
            raise TrainingError("--recon-views must be 1 or 2")
        if self.graph_dim < 0 or self.graph_neighbours < 2 or self.graph_epochs < 1 or self.graph_weight <= 0:
            raise TrainingError("--graph-dim must be >= 0, --graph-neighbours >= 2, --graph-epochs >= 1 "
                                "and --graph-weight > 0")
        if self.map_dim < 0 or self.map_weight <= 0 or not 0 <= self.map_whiten <= 1:
            raise TrainingError("--map-dim must be >= 0, --map-weight > 0 and --map-whiten between 0 and 1")
        if not 8 <= self.width <= 256:
            raise TrainingError("--width must be between 8 and 256")
        if self.invariance_loss not in ("cosine", "contrastive"):
            raise TrainingError("--invariance-loss must be cosine or contrastive")
        if self.temperature <= 0 or not 0 < self.min_scale <= 1 or self.colour_jitter < 0 or self.rotate < 0:
            raise TrainingError("--temperature, --min-scale, --colour-jitter and --rotate are out of range")
        if self.invariance < 0 or self.noise_std < 0:
            raise TrainingError("--invariance and --noise-std must not be negative")
        values = asdict(self)
        values["latent_dim"] = latent
        return TrainConfig(**values)

    def to_json(self) -> str:
        """The config as pretty JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Parse JSON written by :meth:`to_json`; unknown keys are refused."""
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise TrainingError(f"unknown keys in training config: {', '.join(unknown)}")
        return cls(**raw)

    def save(self, run_dir: str | os.PathLike) -> str:
        """Write ``config.json`` into ``run_dir`` atomically and return its path."""
        path = os.path.join(run_dir, "config.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(self.to_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> TrainConfig:
        """Read ``config.json`` from a run folder."""
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as fh:
            return cls.from_json(fh.read())
