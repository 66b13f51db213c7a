"""The package version, read from the installed package's metadata (pyproject.toml is its one source).

Read on first use, not at import: ``importlib.metadata`` costs about 60 ms, a tenth of a cold
``imgret query``, and only ``--version`` and ``export`` need the version.
"""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """imgret's version, or ``0.0.0+unknown`` in a source tree that was never installed."""
    from importlib import metadata

    try:
        return metadata.version("imgret")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'imgret.version' has no attribute {name!r}")
