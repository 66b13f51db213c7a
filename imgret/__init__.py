"""imgret: find similar pictures with a small convolutional-autoencoder encoder.

This top-level module is the torch-free public API for applications that bundle imgret.
"""

from imgret.errors import (
    ImageError,
    ImgretError,
    LibraryError,
    LibraryLockedError,
    ModelError,
    ModelMismatchError,
)
from imgret.version import __version__

__all__ = [
    "ImageError",
    "ImgretError",
    "LibraryError",
    "LibraryLockedError",
    "ModelError",
    "ModelMismatchError",
    "__version__",
]
