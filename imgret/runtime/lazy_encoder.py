"""An encoder for a library's own, already checked model, loaded only when something needs it.

A library records its model's fingerprint (the SHA-256 of the file) after the model has passed every
check of :class:`~imgret.runtime.encoder.Encoder` (loads, signature, finite vectors on a probe). A
file with that fingerprint is the same bytes, so a writer whose model matches it knows which model it
holds without loading it: an index run with nothing to embed then never imports onnxruntime, opens no
session and runs no probe (a few hundred milliseconds of a run that otherwise costs a walk).

What is still checked on every writable open: the fingerprint of the model file, so a damaged or
replaced model is refused at once as before (a damaged copy in the library by its fingerprint; another
model as a mismatch). What moves to the first picture to embed: onnxruntime's own load and the probe,
which the same bytes passed when they were recorded (an onnxruntime that no longer loads them fails
there, with the usual :class:`~imgret.errors.ModelError`). Readers (``imgret query``) load the model
as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgret.errors import ModelError
from imgret.runtime.encoder import Encoder

SHAPE_KEYS = ("input_size", "embedding_dim", "metric")  # what a library records of its model's shape


def can_defer(recorded: dict[str, str]) -> bool:
    """Whether a library's metadata records enough of its model to stand in for it until used."""
    return "model_fingerprint" in recorded and all(recorded.get(k) for k in SHAPE_KEYS)


class LazyEncoder:
    """Stands in for an :class:`Encoder` of a model whose fingerprint the library recorded.

    ``path``, ``name``, ``fingerprint``, ``size``, ``dim`` and ``metric`` are known without loading the
    model (the last three from the library's metadata). Any other attribute (``embed_arrays``,
    ``embed``, ``info``, ``session``) loads and checks the model in full first, once.
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None, recorded: dict[str, str],
                 threads: int | None = None) -> None:
        """``recorded``: the library's metadata (``model_fingerprint`` and the :data:`SHAPE_KEYS`)."""
        self.path = Path(path)
        self.name = name or self.path.stem
        self.fingerprint = recorded["model_fingerprint"]
        self.size = int(recorded["input_size"])
        self.dim = int(recorded["embedding_dim"])
        self.metric = recorded["metric"]
        self._threads = threads
        self._encoder: Encoder | None = None

    @property
    def loaded(self) -> bool:
        """Whether the model has been loaded (an onnxruntime session exists)."""
        return self._encoder is not None

    def load(self) -> Encoder:
        """The real encoder, loaded and checked on first use."""
        if self._encoder is None:
            encoder = Encoder(self.path, threads=self._threads, name=self.name)
            if encoder.fingerprint != self.fingerprint:
                raise ModelError(f"{self.path}: the model file changed while the library was open")
            if (encoder.size, encoder.dim, encoder.metric) != (self.size, self.dim, self.metric):
                raise ModelError(f"{self.path}: the model does not match what the library recorded of it "
                                 f"(input {encoder.size}, {encoder.dim}-d {encoder.metric})")
            self._encoder = encoder
        return self._encoder

    def __getattr__(self, attr: str):
        # Only reached for what __init__ did not set: everything that needs the model itself.
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.load(), attr)
