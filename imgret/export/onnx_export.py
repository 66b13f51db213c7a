"""Export a trained encoder to ONNX: encoder only, metadata, checker, parity, atomic write.

Uses PyTorch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) at opset 17, because
the dynamo exporter needs ``onnxscript``, which imgret does not install. The graph is
:class:`imgret.train.models.EmbeddingModel`: uint8 NHWC RGB ``[batch, S, S, 3]`` in, float32
``[batch, D]`` L2-normalised embedding out, batch axis dynamic. Nothing is left at the destination
unless the ONNX checker passes and onnxruntime matches PyTorch on the run's validation pictures.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict, dataclass

from imgret.errors import ExportError, TrainingError
from imgret.export.parity import ParityReport, check_parity
from imgret.export.quantize import Int8Report, compare_int8, quantize_static_qdq
from imgret.export.samples import validation_images
from imgret.runtime.modelinfo import INPUT_NAME, OUTPUT_NAME, ModelInfo
from imgret.train.checkpoint import (
    build_from_checkpoint,
    checkpoint_config,
    embedding_model,
    load_checkpoint,
    resolve_checkpoint,
    summary_of,
)
from imgret.version import __version__

OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_encoder` wrote and how it checked it."""

    path: str
    checkpoint: str
    info: ModelInfo
    parity: ParityReport
    int8: Int8Report | None = None
    notes: tuple[str, ...] = ()  # advice for the person exporting (the CLI prints it to stderr)


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


def _write_metadata(path: str, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "imgret"
    model.producer_version = __version__
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the ONNX checker refused the exported graph: {exc}") from exc
    onnx.save(model, path)


def _fsync_replace(tmp: str, path: str) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def export_encoder(
    checkpoint_or_run: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    flip_tta: bool = False,
    int8: bool = False,
    model_id: str | None = None,
    graph_weight: float | None = None,
    map_weight: float | None = None,
    map_whiten: float | None = None,
    check_count: int = 32,
    calibration_count: int = 128,
) -> ExportResult:
    """Export the encoder of a run folder (its ``best.pt``) or a checkpoint to ``out_path``.

    The file carries :class:`~imgret.runtime.modelinfo.ModelInfo` metadata; ``flip_tta`` averages the
    codes of each picture and its mirror inside the graph. ``graph_weight`` and ``map_weight`` override
    the training config's weights of a graph head's and a map head's output beside the code, and
    ``map_whiten`` its whitening of the map head's axes. ``int8`` also writes ``*.int8.onnx``
    (static QDQ, calibrated on validation pictures) and reports how its neighbours differ.
    Raises :class:`~imgret.errors.ExportError` (leaving no file) when the checks fail.
    """
    import torch

    checkpoint = resolve_checkpoint(checkpoint_or_run)
    state = load_checkpoint(checkpoint)
    config = checkpoint_config(state).resolved()
    model = build_from_checkpoint(state)
    try:
        embedder = embedding_model(model, config, flip_tta=flip_tta, graph_weight=graph_weight,
                                   map_weight=map_weight, map_whiten=map_whiten)
    except TrainingError as exc:
        raise ExportError(str(exc)) from None
    sha = weights_sha256(model.encoder)
    summary = summary_of(state)
    training = {k: summary.get(k) for k in ("count", "image_size", "epochs", "final_train_loss",
                                              "final_val_loss", "data")}
    # The objective, so a reader of the model knows how it was trained (not just on what).
    training["recipe"] = {k: getattr(config, k) for k in (
        "augment", "denoise", "invariance", "invariance_loss", "temperature", "colour_jitter", "rotate",
        "min_scale", "decoder", "recon_views", "width", "projector", "map_dim", "graph_dim", "graph_neighbours", "graph_epochs",
        "batch_size", "lr", "schedule", "seed") if hasattr(config, k)}
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
        imgret_version=__version__, weights_sha256=sha)
    info.validate()

    out_path = os.fspath(out_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = f"{out_path}.tmp{os.getpid()}.onnx"
    tmp8 = f"{out_path}.tmp{os.getpid()}.int8.onnx"
    try:
        dummy = torch.zeros(2, config.image_size, config.image_size, 3, dtype=torch.uint8)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(embedder, (dummy,), tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        _write_metadata(tmp, info.to_metadata())
        images, source = validation_images(config, max(check_count, calibration_count if int8 else 0))
        parity = check_parity(tmp, embedder, images[:check_count], source=source)
        report = None
        if int8:
            quantize_static_qdq(tmp, tmp8, images)
            props = info.to_metadata()
            props["imgret.model_id"] = info.model_id + "-int8"
            props["imgret.quantization"] = "int8-static-qdq"
            _write_metadata(tmp8, props)
            report = compare_int8(tmp, tmp8, images)
            _fsync_replace(tmp8, int8_path_for(out_path))
            report = Int8Report(**{**asdict(report), "path": int8_path_for(out_path)})
        _fsync_replace(tmp, out_path)
    finally:
        for leftover in (tmp, tmp8):
            if os.path.exists(leftover):
                os.unlink(leftover)
    notes = ()
    if config.graph_dim and not flip_tta:
        notes = ("the graph head was fitted on codes averaged with their mirror's; export with --flip-tta "
                 "to give it the same input",)
    return ExportResult(out_path, checkpoint, info, parity, report, notes)
