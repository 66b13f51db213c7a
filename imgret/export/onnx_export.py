"""Export a trained encoder to ONNX: encoder only, metadata, checker, parity, atomic write.

The model is built, checked and (optionally) quantised in memory; only when every check has passed
is it written, through :mod:`imgret.runtime.atomic`.

Uses PyTorch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) at opset 17, because
the dynamo exporter needs ``onnxscript``, which imgret does not install. The graph is
:class:`imgret.train.models.EmbeddingModel`: uint8 NHWC RGB ``[batch, S, S, 3]`` in, float32
``[batch, D]`` L2-normalised embedding out, batch axis dynamic. Nothing is left at the destination
unless the ONNX checker passes and onnxruntime matches PyTorch on the run's validation pictures.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, replace

import numpy as np

from imgret.errors import ExportError, TrainingError
from imgret.export.dup_threshold import DupEstimate, estimate_for_export
from imgret.export.parity import ParityReport, check_parity
from imgret.export.quantize import Int8Report, compare_int8, quantize_static_qdq
from imgret.export.samples import validation_images, validation_paths
from imgret.runtime.atomic import write_bytes
from imgret.runtime.modelinfo import INPUT_NAME, OUTPUT_NAME, ModelInfo
from imgret.runtime.progress import ProgressCallback
from imgret.train.checkpoint import (
    build_from_checkpoint,
    checkpoint_config,
    embedding_model,
    load_checkpoint,
    resolve_checkpoint,
    summary_of,
)
from imgret.train.spread import collapse_warning, embed_uint8
from imgret.version import version

OPSET = 17
# The training settings recorded in the model's metadata (``training.recipe``).
RECIPE_KEYS = ("recipe", "augment", "denoise", "invariance", "invariance_loss", "temperature", "colour_jitter", "rotate",
               "min_scale", "decoder", "recon_views", "width", "projector", "map_dim", "graph_dim",
               "graph_neighbours", "graph_epochs", "batch_size", "lr", "schedule", "seed", "rot90",
               "greyscale", "caption", "border", "blur", "canvas")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_encoder` wrote and how it checked it."""

    path: str
    checkpoint: str
    info: ModelInfo
    parity: ParityReport
    int8: Int8Report | None = None
    notes: tuple[str, ...] = ()  # advice for the person exporting (the CLI prints it to stderr)
    dup: DupEstimate | None = None  # the copy threshold stored in info, and how it scored
    warnings: tuple[str, ...] = ()  # signs the model is not fit to use (the CLI prints them to stderr)


GRAPH_WITHOUT_FLIP = ("the graph head was fitted on codes averaged with their mirror's; export with --flip-tta "
                      "to give it the same input")


def _with_copy_threshold(fp32: bytes, info, config) -> tuple[bytes, object, DupEstimate | None]:
    """The copy threshold (imgret dups) estimated on the run's validation pictures (see
    dup_threshold.py) and written into the model's metadata."""
    dup = estimate_for_export(fp32, validation_paths(config), config.image_size)
    if dup is None:
        return fp32, info, None
    info = replace(info, dup_threshold=dup.threshold, dup_ratio=dup.ratio)
    return _with_metadata(fp32, info.to_metadata()), info, dup


def weights_sha256(encoder) -> str:
    """sha256 over the encoder's state_dict: each key name and its tensor bytes, keys sorted."""
    h = hashlib.sha256()
    for key, tensor in sorted(encoder.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def int8_path_for(out_path: str) -> str:
    """``model.onnx`` → ``model.int8.onnx``."""
    root, ext = os.path.splitext(out_path)
    return f"{root}.int8{ext or '.onnx'}"


def _with_metadata(model_bytes: bytes, props: dict[str, str]) -> bytes:
    """The model with ``props`` as its metadata, checked by the ONNX checker."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "imgret"
    model.producer_version = version()
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX checker refused the exported graph: {exc}") from exc
    return model.SerializeToString()


def _to_onnx(embedder, image_size: int) -> bytes:
    """The embedding graph as ONNX bytes (batch axis dynamic)."""
    import torch

    buffer = io.BytesIO()
    dummy = torch.zeros(2, image_size, image_size, 3, dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(embedder, (dummy,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return buffer.getvalue()


def _model_info(state: dict, config, embedder, *, flip_tta: bool, model_id: str | None) -> ModelInfo:
    """The contract the file carries: sizes, metric, a model id and how it was trained."""
    sha = weights_sha256(embedder.encoder)
    summary = summary_of(state)
    training = {k: summary.get(k) for k in ("count", "image_size", "epochs", "final_train_loss",
                                              "final_val_loss", "data")}
    # The objective, so a reader of the model knows how it was trained (not just on what).
    training["recipe"] = {k: getattr(config, k) for k in RECIPE_KEYS}
    # Head weights as exported (export may override them).
    if config.map_dim:
        training["recipe"]["map_weight"] = embedder.map_weight
        training["recipe"]["map_whiten"] = embedder.map_whiten
    if config.graph_dim:
        training["recipe"]["graph_weight"] = embedder.graph_weight
    dim = config.latent_dim + config.map_dim + config.graph_dim
    info = ModelInfo(
        model_id=model_id or f"imgret-{config.arch}-{dim}d-{config.image_size}px-{sha[:8]}",
        input_size=config.image_size, embedding_dim=dim, metric="cosine", l2_normalised=True,
        arch=config.arch, latent_dim=config.latent_dim, flip_tta=flip_tta, training=training,
        imgret_version=version(), weights_sha256=sha)
    info.validate()
    return info


def _int8(fp32: bytes, info: ModelInfo, images: np.ndarray, out_path: str) -> tuple[bytes, Int8Report]:
    """The int8 model (with its own id and a quantization note in its metadata) and how it compares."""
    props = info.to_metadata()
    props["imgret.model_id"] = info.model_id + "-int8"
    props["imgret.quantization"] = "int8-static-qdq"
    int8 = _with_metadata(quantize_static_qdq(fp32, images), props)
    return int8, compare_int8(fp32, int8, images, int8_path_for(out_path))


def export_encoder(  # noqa: PLR0913 - mirrors imgret export's options
    checkpoint_or_run: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    flip_tta: bool | None = None,
    int8: bool = False,
    model_id: str | None = None,
    graph_weight: float | None = None,
    map_weight: float | None = None,
    map_whiten: float | None = None,
    check_count: int = 32,
    calibration_count: int = 128,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export the encoder of a run folder (its ``best.pt``) or a checkpoint to ``out_path``.

    The file carries :class:`~imgret.runtime.modelinfo.ModelInfo` metadata; ``flip_tta`` averages the
    codes of each picture and its mirror inside the graph (None: as the run's config says, which is on
    when it learnt from mirrored views or has a graph head). ``graph_weight`` and ``map_weight`` override
    the training config's weights of a graph head's and a map head's output beside the code, and
    ``map_whiten`` its whitening of the map head's axes. ``int8`` also writes ``*.int8.onnx``
    (static QDQ, calibrated on validation pictures) and reports how its neighbours differ.
    ``progress(done, total, note)`` hears of each step. Raises :class:`~imgret.errors.ExportError`
    (leaving no file) when the checks fail.
    """
    steps = 4 + int(int8)
    progress = progress or (lambda done, total, note="": None)
    progress(0, steps, "loading the checkpoint")
    checkpoint = resolve_checkpoint(checkpoint_or_run)
    state = load_checkpoint(checkpoint)
    config = checkpoint_config(state).resolved()
    flip_tta = config.flip_tta if flip_tta is None else bool(flip_tta)
    try:
        embedder = embedding_model(build_from_checkpoint(state), config, flip_tta=flip_tta,
                                   graph_weight=graph_weight, map_weight=map_weight, map_whiten=map_whiten)
    except TrainingError as exc:
        raise ExportError(str(exc)) from None
    info = _model_info(state, config, embedder, flip_tta=flip_tta, model_id=model_id)
    progress(1, steps, "exporting the graph")
    fp32 = _with_metadata(_to_onnx(embedder, config.image_size), info.to_metadata())
    progress(2, steps, "checking it against PyTorch")
    images, source = validation_images(config, max(check_count, calibration_count if int8 else 0))
    parity = check_parity(fp32, embedder, images[:check_count], source=source)
    fp32, info, dup = _with_copy_threshold(fp32, info, config)
    collapsed = collapse_warning(embed_uint8(embedder, images), source) if source == "validation images" else None
    out_path = os.fspath(out_path)
    report = None
    if int8:
        progress(3, steps, "quantising to int8")
        int8_bytes, report = _int8(fp32, info, images, out_path)
    progress(steps - 1, steps, "writing")
    # Only now, with every check passed, is anything written (each file atomically).
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if report is not None:
        write_bytes(report.path, int8_bytes)
    write_bytes(out_path, fp32)
    progress(steps, steps)
    notes = (GRAPH_WITHOUT_FLIP,) if config.graph_dim and not flip_tta else ()
    return ExportResult(out_path, checkpoint, info, parity, report, notes, dup, (collapsed,) if collapsed else ())
