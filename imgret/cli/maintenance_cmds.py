"""Commands that look after a library: check it thoroughly, re-point it at moved pictures."""

from __future__ import annotations

import os

import click

from imgret.cli import output
from imgret.cli.options import library_folder, library_option


@click.command("check")
@library_option
def check_command(library):
    """Check every file of the library thoroughly; exit 1, naming the problem and the fix, if any is
    damaged.

    Everyday queries check only what is cheap (file sizes, headers, checksums of the vector file's
    head and tail); this reads everything: the whole catalogue, the whole vector file, the model copy.
    A damaged vector file is marked so that the next `imgret index` rebuilds it.

    \b
    Example:
      imgret check --library ./photos.imgret
    """
    from imgret.runtime.maintenance import check_library

    facts = check_library(library_folder(library))
    click.echo(f"{output.printable(facts['library'])}: ok ({facts['pictures']} pictures)", err=True)


@click.command("relocate")
@click.argument("old", type=click.Path(path_type=str))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=str))
@library_option
def relocate_command(old, new, library):
    """Re-point the library at pictures that moved from folder OLD to folder NEW.

    Use it after moving or copying an indexed folder (and the library) somewhere else, for example
    to another machine: no picture is read or embedded again, and the next `imgret index NEW` finds
    every picture unchanged.

    \b
    Example:
      imgret relocate /home/me/Pictures /media/photos --library /media/photos.imgret
    """
    from imgret.runtime.maintenance import relocate_library

    moved = relocate_library(library_folder(library), old, new)
    if not moved:
        raise click.ClickException(f"the library holds no pictures under {output.printable(os.path.abspath(old))}; "
                                   "see `imgret info` for its folders")
    click.echo(f"library re-pointed from {output.printable(old)} to {output.printable(new)}", err=True)
