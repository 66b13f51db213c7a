"""Options shared by several commands."""

from __future__ import annotations

import click

index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False, path_type=str),
    envvar="IMGRET_INDEX",
    default=None,
    help="Library folder to use (default: the per-user library; env IMGRET_INDEX).",
)
model_option = click.option(
    "--model",
    "-m",
    default=None,
    metavar="NAME|FILE.onnx",
    help="A bundled model name (see `imgret models`) or an .onnx encoder file. "
    "Default: the library's own model, or the bundled default for a new library.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


def positive_count(ctx, param, value):
    """Click callback: ``-N`` must be a whole number of at least 1."""
    if value is None:
        return value
    if value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}", ctx=ctx, param=param)
    return value
