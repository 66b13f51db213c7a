"""The metadata an imgret encoder carries in its ONNX ``metadata_props``.

Export writes it (``imgret.export``) and the runtime reads it, so this module is the single
definition of the contract. It imports neither torch nor onnx.

The encoder graph takes ``image``: uint8, NHWC, RGB, ``[batch, size, size, 3]``, the picture already
resized by :func:`imgret.runtime.imageio.preprocess` (rule ``squash-bilinear``: the whole picture
resized to a square, aspect ratio not kept). Scaling to floats and normalisation happen inside the
graph. The output ``embedding`` is float32 ``[batch, embedding_dim]``; when ``l2_normalised`` is true
the graph already divides each vector by its norm and ``metric`` is ``cosine``.

Two optional keys say when two pictures are copies of one another (``imgret dups``, query folding):
``imgret.dup_threshold`` (a distance in the model's metric, squared for ``l2`` as usearch reports it)
and ``imgret.dup_ratio`` (the ratio test of :func:`imgret.runtime.dups.find_duplicates`). A model without them still loads; see :mod:`imgret.runtime.copies` for the
defaults it then gets.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from imgret.errors import ModelError

FORMAT_VERSION = 1
PREFIX = "imgret."
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
RESIZE_RULE = "squash-bilinear"
METRICS = ("cosine", "l2")


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime and a person need to know about an exported encoder."""

    model_id: str
    input_size: int
    embedding_dim: int
    metric: str = "cosine"
    l2_normalised: bool = True
    arch: str = "unknown"
    latent_dim: int = 0
    input_dtype: str = "uint8"
    input_layout: str = "NHWC"
    channel_order: str = "RGB"
    resize: str = RESIZE_RULE
    normalisation: dict = field(default_factory=lambda: {"scale": 1 / 255, "mean": [0.0] * 3, "std": [1.0] * 3})
    flip_tta: bool = False
    training: dict = field(default_factory=dict)
    imgret_version: str = ""
    weights_sha256: str = ""
    format_version: int = FORMAT_VERSION
    dup_threshold: float | None = None
    dup_ratio: float | None = None

    def to_metadata(self) -> dict[str, str]:
        """Flatten to ``metadata_props`` strings: scalars as text, structures as JSON."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:  # optional keys (dup_*) are left out, as older models have them
                continue
            if isinstance(value, (dict, list)):
                text = json.dumps(value, sort_keys=True)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            out[PREFIX + key] = text
        return out

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> ModelInfo:
        """Parse ``metadata_props``; raise :class:`ModelError` when required keys are missing or odd."""
        raw = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "format_version" not in raw:
            raise ModelError("not an imgret encoder: its ONNX metadata has no imgret.format_version")
        try:
            version = int(raw["format_version"])
        except ValueError as exc:
            raise ModelError(f"bad imgret.format_version {raw['format_version']!r}") from exc
        if version > FORMAT_VERSION:
            raise ModelError(
                f"model format version {version} is newer than this imgret understands ({FORMAT_VERSION}); "
                "upgrade imgret"
            )
        kwargs: dict = {}
        for name in cls.__dataclass_fields__:
            if name not in raw:
                continue
            kwargs[name] = _parse(name, raw[name])
        for required in ("model_id", "input_size", "embedding_dim"):
            if required not in kwargs:
                raise ModelError(f"imgret model metadata lacks imgret.{required}")
        info = cls(**kwargs)
        info.validate()
        return info

    def validate(self) -> None:
        """Refuse metadata the runtime cannot honour."""
        if self.metric not in METRICS:
            raise ModelError(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if not 8 <= self.input_size <= 1024:
            raise ModelError(f"input size {self.input_size} is outside 8..1024")
        if not 1 <= self.embedding_dim <= 8192:
            raise ModelError(f"embedding dimension {self.embedding_dim} is outside 1..8192")
        if self.input_dtype != "uint8" or self.input_layout != "NHWC" or self.channel_order != "RGB":
            raise ModelError("imgret encoders take uint8 NHWC RGB input")
        if self.resize != RESIZE_RULE:
            raise ModelError(f"unknown resize rule {self.resize!r}")
        for name in ("dup_threshold", "dup_ratio"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ModelError(f"imgret.{name} must be a finite distance >= 0, not {value!r}")


def _parse(name: str, text: str):
    """One metadata value as its field's type; :class:`ModelError` when it is not one."""
    try:
        if name in ("normalisation", "training"):
            return json.loads(text)
        if name in ("l2_normalised", "flip_tta"):
            return text.strip().lower() == "true"
        if name in ("input_size", "embedding_dim", "latent_dim", "format_version"):
            return int(text)
        if name in ("dup_threshold", "dup_ratio"):
            return float(text) if text.strip() else None  # empty: taken as absent
        return text
    except (ValueError, json.JSONDecodeError) as exc:
        raise ModelError(f"bad value for imgret.{name}: {text!r}") from exc
