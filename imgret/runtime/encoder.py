"""The encoder: an imgret ONNX model run by onnxruntime on the CPU.

The model describes itself (:mod:`imgret.runtime.modelinfo`), so the runtime knows the input size,
metric and embedding size without configuration. Before an encoder is used it is checked: the file
must be ``.onnx``, load without custom operators, have the declared input and output shapes, and give
finite, non-zero vectors on a probe image. A model failing any check is refused before a library is
touched. A reader opening its library's own model (the file still has the fingerprint recorded when
it passed those checks) reads only its metadata (:mod:`imgret.runtime.onnxmeta`); onnxruntime opens
it when a picture must first be embedded, so a query of library pictures starts no session.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from imgret.errors import ModelError
from imgret.runtime.fileio import file_sha256
from imgret.runtime.modelinfo import INPUT_NAME, OUTPUT_NAME, ModelInfo
from imgret.runtime.onnxmeta import NotOnnx, file_metadata_props
from imgret.runtime.session import new_session

MAX_MODEL_BYTES = 512 * 1024 * 1024


class Encoder:
    """Turns pictures into vectors with an imgret ONNX encoder.

    ``Encoder(path).embed(["a.jpg", array, pil_image])`` returns a float32 ``[N, D]`` array, one row per
    input, in order. ``threads`` bounds onnxruntime's intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, name: str | None = None,
                 checked_fingerprint: str | None = None) -> None:
        """Load and check the model at ``path``. ``checked_fingerprint``: the fingerprint of a file
        that passed every check before (a library's record); when this file has it, only its
        metadata is read now, and onnxruntime opens it (signature checked, no probe) when a picture
        must first be embedded."""
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            raise ModelError(f"{path}: only .onnx model files are loaded")
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if path.stat().st_size > MAX_MODEL_BYTES:
            raise ModelError(f"{path}: model file is larger than {MAX_MODEL_BYTES // 2**20} MiB")
        self.path = path
        self.name = name or path.stem
        self.fingerprint = file_sha256(path)
        self._threads, self._session = threads, None
        if checked_fingerprint is not None and checked_fingerprint == self.fingerprint:
            self.info = ModelInfo.from_metadata(_metadata_of(path))
            return
        self._session = self._open_session()
        self.info = ModelInfo.from_metadata(self._session.get_modelmeta().custom_metadata_map)
        self._check_signature()
        self._probe()

    @property
    def loaded(self) -> bool:
        """Whether onnxruntime has opened the model (a checked file opens on first embed)."""
        return self._session is not None

    @property
    def session(self):
        """The onnxruntime session; a checked file's is opened on first use, after making sure the
        file still has its fingerprint, and its inputs and outputs are checked (the probe is not run
        again: this very file passed it)."""
        if self._session is None:
            if file_sha256(self.path) != self.fingerprint:
                raise ModelError(f"{self.path}: the model file changed after it was opened")
            self._session = self._open_session()
            self._check_signature()
        return self._session

    def _open_session(self):
        try:
            return new_session(self.path, threads=self._threads)
        except Exception as exc:
            raise ModelError(f"{self.path}: onnxruntime cannot load this model ({_first_line(exc)})") from exc

    @classmethod
    def default(cls, **kwargs) -> Encoder:
        """The bundled default encoder."""
        from imgret import models

        ref, path = models.resolve(None)
        return cls(path, name=ref, **kwargs)

    @classmethod
    def load(cls, model: str | os.PathLike, **kwargs) -> Encoder:
        """A bundled model by name, or an .onnx file."""
        from imgret import models

        ref, path = models.resolve(model)
        return cls(path, name=ref, **kwargs)

    @property
    def size(self) -> int:
        """Side of the square picture the model takes."""
        return self.info.input_size

    @property
    def dim(self) -> int:
        return self.info.embedding_dim

    @property
    def metric(self) -> str:
        return self.info.metric

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            raise ModelError(f"{self.path}: expected one input named {INPUT_NAME!r}")
        if inputs[0].type != "tensor(uint8)":
            raise ModelError(f"{self.path}: input must be uint8, found {inputs[0].type}")
        shape = inputs[0].shape
        s = self.info.input_size
        if len(shape) != 4 or list(shape[1:]) != [s, s, 3]:
            raise ModelError(f"{self.path}: input shape {shape} does not match [batch, {s}, {s}, 3]")
        names = [o.name for o in outputs]
        if OUTPUT_NAME not in names:
            raise ModelError(f"{self.path}: no output named {OUTPUT_NAME!r}")
        out = outputs[names.index(OUTPUT_NAME)]
        if out.type != "tensor(float)":
            raise ModelError(f"{self.path}: output must be float32, found {out.type}")
        if len(out.shape) != 2 or (isinstance(out.shape[1], int) and out.shape[1] != self.info.embedding_dim):
            raise ModelError(f"{self.path}: output shape {out.shape} does not match [batch, {self.dim}]")

    def _probe(self) -> None:
        s = self.size
        ramp = np.linspace(0, 255, s * s * 3).reshape(1, s, s, 3).astype(np.uint8)
        grey = np.full((1, s, s, 3), 128, dtype=np.uint8)
        vecs = self._run(np.concatenate([ramp, grey]))
        if vecs.shape != (2, self.dim):
            raise ModelError(f"{self.path}: model returned shape {vecs.shape}, expected (2, {self.dim})")
        if not np.all(np.isfinite(vecs)) or np.any(np.linalg.norm(vecs, axis=1) < 1e-12):
            raise ModelError(f"{self.path}: model gives non-finite or zero vectors on a probe image")

    def _run(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.uint8)})[0]
        return np.asarray(out, dtype=np.float32)

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Embed preprocessed uint8 pictures ``[N, size, size, 3]``."""
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1:] != (self.size, self.size, 3) or batch.dtype != np.uint8:
            raise ValueError(f"expected uint8 [N, {self.size}, {self.size}, 3], got {batch.dtype} {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._run(batch)

    def embed(self, images: Sequence | Iterable, *, batch_size: int = 32) -> np.ndarray:
        """Embed paths, Pillow images or arrays (any size) to a float32 ``[N, D]`` array.

        Each input goes through :func:`imgret.runtime.imageio.preprocess`; an unreadable file raises
        :class:`imgret.errors.ImageError`.
        """
        from imgret.runtime import imageio  # Pillow's decoders load only when a picture is embedded

        rows = []
        pending: list[np.ndarray] = []
        for item in images:
            pending.append(imageio.preprocess(item, self.size))
            if len(pending) == batch_size:
                rows.append(self.embed_arrays(np.stack(pending)))
                pending = []
        if pending:
            rows.append(self.embed_arrays(np.stack(pending)))
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(rows)


def _metadata_of(path: Path) -> dict[str, str]:
    """A checked model file's metadata, read from its bytes (no onnxruntime session)."""
    try:
        return file_metadata_props(path)
    except (OSError, NotOnnx) as exc:
        raise ModelError(f"{path}: cannot read the model's metadata ({exc})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
