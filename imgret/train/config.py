"""The training configuration: one dataclass, saved as ``config.json`` in the run folder.

Defaults that depend on the architecture (latent size) are filled in by :meth:`TrainConfig.resolved`,
so the saved JSON always states every value the run used.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace

from imgret.errors import TrainingError
from imgret.runtime.atomic import write_text
from imgret.train.recipes import RECIPE_HELP, RECIPES, recipe_values

ARCHS = ("conv", "seed")
ARCH_CHOICES = ("auto", *ARCHS)
SCHEDULES = ("onecycle", "cosine")
DEFAULT_IMAGE_SIZE = 128
# --arch auto: the seed encoder (Flatten→Dense) up to this size, the conv encoder (global pooling) above,
# where the seed encoder's dense layer would grow with the square of the size.
SEED_MAX_SIZE = 32
DEFAULT_WIDTH = {"conv": 32, "seed": 64}
# --map-dim auto: the seed encoder's last feature map (128 x 7 x 7 at 28 px) reduced to 256 values, up to
# SEED_MAX_SIZE; past it the map is too large to reduce, and the conv encoder's pooling summarises it.
AUTO_MAP_DIM = 256
# The conv encoder halves the picture four times, the seed encoder twice.
SIZE_MULTIPLE = {"conv": 16, "seed": 4}
DECODER_SIZES = ("full", "light", "half")
INVARIANCE_LOSSES = ("cosine", "contrastive")
# The settings of each head fitted after the epochs; ``add_heads`` (and ``imgret train --resume`` with
# any of them on the command line) changes only these.
HEAD_SETTINGS = {"map": ("map_dim", "map_weight", "map_whiten"),
                 "graph": ("graph_dim", "graph_neighbours", "graph_epochs", "graph_weight")}
OPTION = "imgret.option"  # the metadata key of fields that are ``imgret train`` options


def option(default, help: str | None = None, *, choices: tuple | None = None, show_default: bool = True,
           bounds: tuple | None = None):
    """A :class:`TrainConfig` field that ``imgret train`` offers as ``--name``, with the option's
    ``help``, its ``choices``, inclusive ``bounds`` and whether the help shows the default. Fields
    made without it (``data``, ``out``, ``amp``, ``recon_count``) are not generated options."""
    return field(default=default, metadata={OPTION: {"help": help, "choices": choices,
                                                     "show_default": show_default, "bounds": bounds}})


def cli_options() -> list[tuple[str, type, object, dict]]:
    """``(name, type, default, settings)`` of each field ``imgret train`` offers, in field order; the
    CLI builds its options from these, so each default and help text is written once, here."""
    hints = {"int": int, "float": float, "str": str, "bool": bool}
    return [(f.name, hints[f.type], f.default, f.metadata[OPTION]) for f in fields(TrainConfig)
            if OPTION in f.metadata]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; paths are as the user gave them.

    Fields are in the order ``imgret train --help`` lists them; each carries its option's help."""

    data: str
    out: str
    recipe: str = option("default", RECIPE_HELP, choices=tuple(RECIPES))
    arch: str = option("auto", "conv: 4 conv stages + global average pooling; seed: the original Keras model; auto: "
                       f"seed up to {SEED_MAX_SIZE} px, conv above.", choices=ARCH_CHOICES)
    latent_dim: int = option(128, "Embedding size (the code; heads add their own dimensions).")
    image_size: int = option(0, "Square input size in pixels (multiple of 16 for conv, of 4 for seed).  [default: "
                             f"{DEFAULT_IMAGE_SIZE}, or for smaller pictures the smallest allowed size at or above "
                             "their median size]", show_default=False)
    epochs: int = option(10)
    batch_size: int = option(512)
    lr: float = option(2e-3, "Peak learning rate (Adam).")
    schedule: str = option("onecycle", choices=SCHEDULES)
    val_split: float = option(0.25, "Share held out for validation when DATA has no train/ and val/ folders.")
    seed: int = option(0)
    workers: int = option(0, "DataLoader worker processes (and decoding threads for the cache).")
    device: str = option("auto", "auto (CUDA, else MPS, else CPU), cpu, cuda, mps.")
    max_images: int = option(0, "Use at most this many pictures (quick runs); 0 = all.", show_default=False)
    denoise: bool = option(False, "Add gaussian noise to inputs; the target stays clean.")
    noise_std: float = option(0.1, "Noise level for --denoise.")
    augment: bool = option(True, "Random shift/zoom, mirror and erasing on inputs.")
    invariance: float = option(1.0, "Weight of a term pulling the codes of two random views of a picture together "
                               "(0: none).")
    invariance_loss: str = option("contrastive", "cosine: pull the two views' codes together; contrastive: also "
                                  "push other pictures' codes away.", choices=INVARIANCE_LOSSES)
    temperature: float = option(0.7, "Temperature of the contrastive term.")
    colour_jitter: float = option(0.2, "Views get brightness/contrast/saturation scaled by 1 ± this (and a small "
                                  "hue turn).")
    rotate: float = option(8.0, "Views are rotated up to this many degrees.")
    min_scale: float = option(0.8, "Views zoom in to at most this share of the side.")
    rot90: float = option(0.0, "Probability that a view is turned by a random multiple of 90 degrees.",
                          bounds=(0, 1))
    greyscale: float = option(0.0, "Probability that a view loses its colour.", bounds=(0, 1))
    caption: float = option(0.0, "Probability that a view gets a caption or logo (a random block of stripes) "
                            "pasted over about a tenth of it.", bounds=(0, 1))
    border: float = option(0.0, "Probability that a view is letterboxed or pillarboxed (shrunk inside a plain "
                           "border on two sides).", bounds=(0, 1))
    blur: float = option(0.0, "Probability that a view is blurred (gaussian, up to 1.5% of the side).",
                         bounds=(0, 1))
    canvas: float = option(0.0, "Probability that a view is shrunk into a larger plain canvas (a screenshot of it).",
                           bounds=(0, 1))
    decoder: str = option("half", "Decoder size (it is not exported). conv: light trains about 4x faster on a CPU, "
                          "half is half of light; seed: full and light are the original's, half has half its "
                          "channels.", choices=DECODER_SIZES)
    recon_views: int = option(1, "With two views (--invariance): reconstruct both, or only the first (half the "
                              "decoder's cost).", bounds=(1, 2))
    width: int = option(0, "Encoder channels of the first stage; each later stage doubles them (seed: 32 is the "
                        "original).  [default: 64 for seed, 32 for conv]", show_default=False)
    map_dim: int = option(-1, "After the epochs, fit a PCA of the encoder's last feature map to this size and export "
                          "it beside the code (keeps detail that tells look-alikes apart); 0 = none.  [default: "
                          f"{AUTO_MAP_DIM} for seed up to {SEED_MAX_SIZE} px, else 0]", show_default=False)
    map_weight: float = option(1.0, "Weight of the map head's output beside the code in the exported embedding.")
    map_whiten: float = option(0.35, "Scale the map head's axes by their variance to this power, negated (0: plain "
                               "PCA; 0.5: every axis the same variance).", bounds=(0, 1))
    graph_dim: int = option(16, "After the epochs, fit a neighbour-graph head of this size whose output is exported "
                            "beside the code (groups similar pictures more tightly); 0 = none.")
    graph_neighbours: int = option(15, "Neighbours per picture in that graph.")
    graph_epochs: int = option(20, "Passes over the graph's edges.")
    graph_weight: float = option(1.5, "Weight of the head's output beside the code in the exported embedding.")
    projector: bool = option(True, "Apply the agreement term to a small training-only head above the embedding.")
    weight_decay: float = 0.0  # Adam's
    amp: bool = True  # mixed precision; only ever used on CUDA
    recon_count: int = 8  # pictures shown in recon.png
    # What imgret export does by default: average each picture's code with its mirror's. None: on when the
    # run learnt from mirrored views (--augment, --invariance) or has a graph head (fitted on such codes).
    flip_tta: bool | None = None
    # The pictures' median size (longer side, a sample of at most 256) when --image-size was chosen from it.
    typical_size: int = 0

    @classmethod
    def from_recipe(cls, name: str, *, data: str, out: str, **given) -> TrainConfig:
        """The config of recipe ``name`` (:mod:`imgret.train.recipes`) with the settings in ``given``
        overriding the recipe's; raise :class:`TrainingError` for an unknown recipe.

        Example: ``TrainConfig.from_recipe("plain", data="photos", out="runs/photos", epochs=20)``."""
        if name not in RECIPES:
            raise TrainingError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
        return cls(data=data, out=out, recipe=name, **{**recipe_values(name), **given})

    def resolved(self) -> TrainConfig:
        """Fill the defaults that depend on others (architecture, width, map head, image size, export
        mirroring) and check values; raise :class:`TrainingError` on bad ones. An ``image_size`` of 0
        becomes the default size here; :func:`imgret.train.run.train` first sets it from the pictures."""
        size = self.image_size or DEFAULT_IMAGE_SIZE
        arch = self.arch if self.arch != "auto" else ("seed" if size <= SEED_MAX_SIZE else "conv")
        views = self.augment or self.invariance > 0
        filled = replace(self, arch=arch, image_size=size, width=self.width or DEFAULT_WIDTH.get(arch, 32),
                         map_dim=self.map_dim if self.map_dim >= 0 else _auto_map_dim(arch, size),
                         flip_tta=bool(views or self.graph_dim) if self.flip_tta is None else bool(self.flip_tta))
        filled._check_choices()
        filled._check_ranges()
        return filled

    def _check_choices(self) -> None:
        if self.recipe not in RECIPES and self.recipe != "custom":
            raise TrainingError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")
        if self.arch not in ARCHS:
            raise TrainingError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCH_CHOICES)}")
        if self.schedule not in SCHEDULES:
            raise TrainingError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.decoder not in DECODER_SIZES:
            raise TrainingError("--decoder must be full, light or half")
        if self.invariance_loss not in INVARIANCE_LOSSES:
            raise TrainingError("--invariance-loss must be cosine or contrastive")
        multiple = SIZE_MULTIPLE[self.arch]
        if self.image_size < multiple or self.image_size % multiple:
            raise TrainingError(f"--image-size for arch {self.arch} must be a multiple of {multiple}")

    def _check_ranges(self) -> None:
        chances = (self.rot90, self.greyscale, self.caption, self.border, self.blur, self.canvas)
        checks = (
            (0.0 <= self.val_split < 1.0, "--val-split must be in [0, 1)"),
            (self.epochs >= 1 and self.batch_size >= 1 and self.latent_dim >= 1 and self.lr > 0,
             "epochs, batch size, latent size and learning rate must be positive"),
            (self.recon_views in (1, 2), "--recon-views must be 1 or 2"),
            (self.graph_dim >= 0 and self.graph_neighbours >= 2 and self.graph_epochs >= 1 and self.graph_weight > 0,
             "--graph-dim must be >= 0, --graph-neighbours >= 2, --graph-epochs >= 1 and --graph-weight > 0"),
            (self.map_dim >= 0 and self.map_weight > 0 and 0 <= self.map_whiten <= 1,
             "--map-dim must be >= 0, --map-weight > 0 and --map-whiten between 0 and 1"),
            (8 <= self.width <= 256, "--width must be between 8 and 256"),
            (self.temperature > 0 and 0 < self.min_scale <= 1 and self.colour_jitter >= 0 and self.rotate >= 0,
             "--temperature, --min-scale, --colour-jitter and --rotate are out of range"),
            (self.invariance >= 0 and self.noise_std >= 0, "--invariance and --noise-std must not be negative"),
            (all(0 <= p <= 1 for p in chances),
             "--rot90, --greyscale, --caption, --border, --blur and --canvas are probabilities (0 to 1)"),
        )
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

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
        # Runs saved before recipes existed named none, and a setting added since they were saved took
        # the plain recipe's value then (the defaults of that time), not today's default recipe's.
        if "recipe" not in raw:
            raw = {**recipe_values("plain"), "image_size": DEFAULT_IMAGE_SIZE, "recipe": "custom", **raw}
        return cls(**raw)

    def save(self, run_dir: str | os.PathLike) -> str:
        """Write ``config.json`` into ``run_dir`` atomically and return its path."""
        path = os.path.join(run_dir, "config.json")
        write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> TrainConfig:
        """Read ``config.json`` from a run folder."""
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as fh:
            return cls.from_json(fh.read())


def _auto_map_dim(arch: str, size: int) -> int:
    return AUTO_MAP_DIM if arch == "seed" and size <= SEED_MAX_SIZE else 0


def size_for(typical: int, arch: str) -> int:
    """The default input size for pictures of median size ``typical``: the smallest size the
    architecture allows at or above it (``auto``: the seed encoder's up to ``SEED_MAX_SIZE``, else the
    conv encoder's), and never above ``DEFAULT_IMAGE_SIZE`` (larger pictures are scaled down to it)."""
    if typical <= 0 or typical >= DEFAULT_IMAGE_SIZE:
        return DEFAULT_IMAGE_SIZE

    def up(multiple: int) -> int:
        return max(multiple, -(-typical // multiple) * multiple)

    if arch == "auto":
        small = up(SIZE_MULTIPLE["seed"])
        return small if small <= SEED_MAX_SIZE else min(up(SIZE_MULTIPLE["conv"]), DEFAULT_IMAGE_SIZE)
    return min(up(SIZE_MULTIPLE[arch]), DEFAULT_IMAGE_SIZE)
