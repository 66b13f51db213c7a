"""The package version, read from the installed package's metadata (pyproject.toml is its one source)."""

from importlib import metadata

try:
    __version__ = metadata.version("imgret")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
