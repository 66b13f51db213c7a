"""Options shared by several commands."""

from __future__ import annotations

import functools

import click

LIBRARY_HELP = "Library folder to use (default: $IMGRET_LIBRARY, else the per-user library)."


def _deprecated_note(old: str, new: str):
    """Click callback for a hidden old spelling: a one-line note on stderr when it is used."""

    def note(ctx, param, value):
        if value is not None:
            click.echo(f"imgret: note: {old} is deprecated; use {new}", err=True)
        return value

    return note


def renamed_option(new: tuple[str, ...], old: str, dest: str, help: str, **kwargs):
    """A folder option spelled ``new`` that still accepts the hidden, deprecated spelling ``old``.

    The command receives one value, ``dest``: the new spelling's, else the old one's, else ``None``.
    """
    old_dest = "_old_" + dest
    folder = click.Path(file_okay=False, path_type=str)

    def decorate(f):
        @functools.wraps(f)
        def command(*args, **kw):
            old_value = kw.pop(old_dest)
            if kw.get(dest) is None:
                kw[dest] = old_value
            return f(*args, **kw)

        command = click.option(old, old_dest, type=folder, default=None, hidden=True,
                               expose_value=True, callback=_deprecated_note(old, new[0]))(command)
        return click.option(*new, dest, type=folder, default=None, help=help, **kwargs)(command)

    return decorate


def library_option(f):
    """``--library PATH`` / ``-l`` (old spelling ``--index``, hidden). ``None`` when not given: the
    library layer then takes the environment's or the per-user library."""
    return renamed_option(("--library", "-l"), "--index", "library", LIBRARY_HELP)(f)


model_option = click.option(
    "--model",
    "-m",
    default=None,
    metavar="NAME|FILE.onnx",
    help="A bundled model name (see `imgret models`) or an .onnx encoder file. "
    "Default: the library's own model, or the bundled default for a new library.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
progress_option = click.option("--progress/--no-progress", default=None,
                               help="Progress bar (default: when stderr is a terminal).")


def positive_count(ctx, param, value):
    """Click callback: ``-N`` must be a whole number of at least 1."""
    if value is None:
        return value
    if value < 1:
        raise click.BadParameter(f"must be at least 1, got {value}", ctx=ctx, param=param)
    return value


def library_folder(library: str | None):
    """The library folder a command uses: the one given, else the environment's (noting the
    deprecated ``$IMGRET_INDEX`` on stderr), else ``None`` for the per-user default."""
    from imgret.runtime.location import OLD_LIBRARY_ENV, library_from_env

    if library is not None:
        return library
    folder, variable = library_from_env()
    if variable == OLD_LIBRARY_ENV:
        click.echo(f"imgret: note: {OLD_LIBRARY_ENV} is deprecated; use IMGRET_LIBRARY", err=True)
    return folder


def montage_path(ctx, param, value):
    """Click callback for a montage file: its suffix picks the format (.jpg, .jpeg, .png or .webp, any
    case), so anything else is refused before work starts; so is a folder, or a file in a folder
    that does not exist."""
    if value is None:
        return value
    import os

    from imgret.runtime.montage import MONTAGE_SUFFIXES  # Pillow: loaded only when a montage is asked for
    suffix = os.path.splitext(value)[1].lower()
    if suffix not in MONTAGE_SUFFIXES:
        allowed = ", ".join(MONTAGE_SUFFIXES)
        raise click.BadParameter(f"{value!r}: the picture's format follows its suffix, one of {allowed}",
                                 ctx=ctx, param=param)
    if os.path.isdir(value) or not os.path.isdir(os.path.dirname(os.path.abspath(value))):
        raise click.BadParameter(f"cannot write a picture to {value!r}", ctx=ctx, param=param)
    return value
