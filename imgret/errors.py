"""Typed exceptions of the imgret library.

The library raises these and never prints or exits; the CLI maps each to one clear line on stderr
(see ``imgret.cli.errors``).
"""

from __future__ import annotations


class ImgretError(Exception):
    """Base class of every error imgret raises on purpose."""


class ImageError(ImgretError):
    """A file could not be read as an image; ``reason`` is a short, stable word for summaries."""

    def __init__(self, message: str, reason: str = "unreadable") -> None:
        super().__init__(message)
        self.reason = reason


class ModelError(ImgretError):
    """A model file is missing, malformed, unsafe or not an imgret encoder."""


class ModelMismatchError(ImgretError):
    """The library was built with another model (or preprocessing) than the one asked for."""


class LibraryError(ImgretError):
    """The library folder is missing, damaged or otherwise unusable."""


class LibraryLockedError(LibraryError):
    """Another process is writing to the same library."""


class MissingExtraError(ImgretError):
    """An optional dependency (for example the ``train`` extra) is not installed."""


class TrainingError(ImgretError):
    """Training cannot start or go on: bad configuration, no usable images, an unusable checkpoint."""


class ExportError(ModelError):
    """Export failed, for example because ONNX and PyTorch disagree; no file is left behind."""


class ClusterError(ImgretError):
    """A Dask cluster cannot be used: unreachable, a worker cannot read the pictures, or it went away."""
