"""The encoders shipped with imgret, and how a ``--model`` value becomes a file.

A bundled model is ``NAME.onnx`` beside ``NAME.md`` (its model card) in this folder. A model value is
either a bundled name or a path to an ``.onnx`` file. This module never imports torch or onnx.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imgret.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "photo-conv-v1"

# The copy threshold and ratio (``imgret dups``, query folding) of bundled models whose files predate
# the ``imgret.dup_threshold`` / ``imgret.dup_ratio`` metadata keys. Keyed by the file's sha256, the
# fingerprint every library records: writing the keys into the files would change it and make existing
# libraries refuse them. Calibration: benchmarks/README.md ("Copies"); the int8 model takes the float
# model's figures (its near-duplicate results are identical to fp32's).
BUNDLED_COPY_DEFAULTS: dict[str, tuple[float, float | None]] = {
    "7a5f0fded706122d0e267fc52b6988cee34abeb85e739c3d8e1c03ede3bbf9f4": (0.10, 0.5),  # photo-conv-v1
    "90ef7f085724083a0a0c691c3b7c0c03dfd94a4d8660e3ed54faf64be6c4a1c2": (0.10, 0.5),  # photo-conv-v1-int8
}


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside the package."""

    name: str
    path: Path
    card: Path | None


def bundled() -> list[BundledModel]:
    """Every bundled model, sorted by name."""
    out = []
    for onnx_file in sorted(MODELS_DIR.glob("*.onnx")):
        card = onnx_file.with_suffix(".md")
        out.append(BundledModel(onnx_file.stem, onnx_file, card if card.is_file() else None))
    return out


def is_bundled(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of the bundled model files (a library records those by name)."""
    try:
        return Path(path).resolve().parent == MODELS_DIR and Path(path).suffix == ".onnx"
    except OSError:
        return False


def resolve(model: str | os.PathLike | None) -> tuple[str, Path]:
    """Return ``(reference, path)`` for a bundled name, a file path, or ``None`` (the default).

    The reference is what a library records: the bundled name, or the absolute file path.
    """
    if model is None:
        model = DEFAULT_MODEL
    text = os.fspath(model)
    names = {m.name: m for m in bundled()}
    if text in names:
        return text, names[text].path
    path = Path(text).expanduser()
    if path.suffix.lower() == ".onnx" or os.sep in text or path.exists():
        if not path.is_file():
            raise ModelError(f"model file not found: {text}")
        return str(path.resolve()), path.resolve()
    known = ", ".join(sorted(names)) or "none"
    raise ModelError(f"unknown model {text!r}; bundled models: {known}; or give a path to an .onnx file")


def bundled_copy_default(fingerprint: str) -> tuple[float, float | None] | None:
    """``(threshold, ratio)`` of a bundled model file by its sha256, or None for any other file."""
    return BUNDLED_COPY_DEFAULTS.get(fingerprint)


def describe_bundled() -> list[dict[str, object]]:
    """One row per bundled model (for ``imgret models``): name, file, size, card and the metadata its
    ONNX file carries. Only the metadata is read: no fingerprint, no checks, no probe run."""
    from imgret.runtime.modelinfo import ModelInfo
    from imgret.runtime.session import new_session

    rows = []
    for m in bundled():
        session = new_session(m.path)
        info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
        rows.append({
            "name": m.name,
            "default": m.name == DEFAULT_MODEL,
            "file": str(m.path),
            "bytes": m.path.stat().st_size,
            "model_id": info.model_id,
            "arch": info.arch,
            "input_size": info.input_size,
            "embedding_dim": info.embedding_dim,
            "metric": info.metric,
            "flip_tta": info.flip_tta,
            "training": info.training,
            "card": str(m.card) if m.card else None,
        })
    return rows
