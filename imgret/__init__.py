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

_LAZY = {
    "Encoder": "imgret.runtime.encoder",
    "Library": "imgret.runtime.library",
    "library_info": "imgret.runtime.library",
    "Hit": "imgret.runtime.results",
    "QueryResult": "imgret.runtime.results",
    "IndexReport": "imgret.runtime.results",
    "ModelInfo": "imgret.runtime.modelinfo",
    "preprocess": "imgret.runtime.imageio",
}


def __getattr__(name: str):
    # Imported on first use, so `import imgret` (and `imgret --help`) stays instant.
    if name == "__version__":
        from imgret.version import version

        return version()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imgret' has no attribute {name!r}")


__all__ = [
    "Encoder",
    "Hit",
    "IndexReport",
    "Library",
    "ModelInfo",
    "QueryResult",
    "library_info",
    "preprocess",
    "ImageError",
    "ImgretError",
    "LibraryError",
    "LibraryLockedError",
    "ModelError",
    "ModelMismatchError",
    "__version__",
]
