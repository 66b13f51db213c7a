"""``imgret dups``: the groups of copies in a library."""

from __future__ import annotations

import json
import os
import sys

import click

from imgret.cli import output, pages
from imgret.cli.options import json_option, library_folder, library_option, model_option, progress_option

# Where the threshold came from, as the summary line says it (keys: CopyRule.source).
_SOURCES = {"given": "given with --threshold", "model metadata": "the model's own",
            "bundled model": "the bundled model's", "fallback": "a fallback: the model states none"}


def _min_size(ctx, param, value):
    if value < 2:
        raise click.BadParameter(f"a group has at least 2 files, got {value}", ctx=ctx, param=param)
    return value


@click.command("dups")
@library_option
@model_option
@click.option("--threshold", type=click.FloatRange(min=0.0), default=None, metavar="DISTANCE",
              help="Largest distance between copies (default: the model's calibrated threshold; "
                   "0.10 for the bundled photo-conv-v1).")
@click.option("--min-size", type=int, default=2, show_default=True, callback=_min_size,
              help="Show only groups of at least this many files.")
@json_option
@click.option("--paths", "paths_only", is_flag=True,
              help="Print only the copies not kept (raw bytes), one per line.")
@click.option("-0", "--null", "nul", is_flag=True, help="With --paths: separate paths with NUL bytes.")
@pages.html_option
@progress_option
def dups_command(library, model, threshold, min_size, as_json, paths_only, nul, html_dir, progress):  # noqa: PLR0913 - one parameter per CLI option
    """Find the copies in the library, in groups, largest first.

    A group holds identical files and resized, cropped, recompressed, recoloured or mirrored versions
    of one picture. Groups are printed largest first. In each, the file to keep (most pixels, then the largest file,
    then the oldest) comes first, marked "keep"; every other member shows its distance to it
    ("identical" for the same content). --json gives one object per group (keys keep, size and
    members, each member with path, distance, pixels, bytes and identical; paths absolute, plus
    *_b64 with the exact bytes of a name that is not UTF-8). --paths prints the copies that are not
    kept, to hand to another tool. imgret itself never deletes or moves anything.

    \b
    Example:
      imgret dups
      imgret dups --html copies/
      imgret dups --paths -0 | xargs -0 trash
    """
    from imgret.runtime.library import Library
    from imgret.runtime.progress import Progress

    if as_json and paths_only:
        raise click.UsageError("--json and --paths are two different outputs; give one of them")
    if nul and not paths_only:
        raise click.UsageError("-0 (--null) separates the paths of --paths; give --paths too")
    with Library.open(library_folder(library), model=model) as lib:
        bar = Progress("finding copies", enabled=progress)
        try:
            found = lib.duplicates(threshold=threshold, min_size=min_size, progress=bar)
        finally:
            bar.close()
    path_of = found.paths.__getitem__
    if as_json:
        _json(found.groups, path_of)
    elif paths_only:
        _paths(found.groups, path_of, nul=nul)
    else:
        _table(found.groups, path_of)
    copies = sum(len(g) - 1 for g in found.groups)
    ratio = "off" if found.rule.ratio is None else f"{found.rule.ratio:g}"
    click.echo(f"{len(found.groups)} groups, {copies} copies not kept "
               f"(threshold {found.rule.threshold:g}, {_SOURCES[found.rule.source]}; ratio test {ratio})", err=True)
    if html_dir:
        from imgret.runtime.page import dups_section

        pages.write(html_dir, f"imgret dups: {len(found.groups)} groups", [dups_section(found.groups, path_of)],
                    progress=progress)


def _member_word(group, member) -> str:
    if member.key == group.keep:
        return "keep"
    return "identical" if member.identical else "copy"


def _table(groups, path_of) -> None:
    """Each group under a heading; a member per line: role, distance, pixels, kB, path."""
    from imgret.runtime.page import pixels_text

    for n, group in enumerate(groups, 1):
        if n > 1:
            click.echo()
        click.echo(f"# group {n}: {len(group)} files")
        for m in group.members:
            facts = m.facts
            size = f"{pixels_text(facts.pixels):>10} {facts.bytes / 1e3:7.0f} kB" if facts else ""
            click.echo(f"{_member_word(group, m):<9}  {m.distance_to_keep:7.4f}  {size}  "
                       f"{output.printable(path_of(m.key))}")


def _json(groups, path_of) -> None:
    """One JSON object per group: ``keep`` (the kept path), ``size``, ``members`` (kept one first)."""
    for group in groups:
        members = [{**output.json_path("path", path_of(m.key)), "distance": round(m.distance_to_keep, 6),
                    "pixels": m.facts.pixels if m.facts else None, "bytes": m.facts.bytes if m.facts else None,
                    "identical": m.identical} for m in group.members]
        row = {**output.json_path("keep", path_of(group.keep)), "size": len(group), "members": members}
        click.echo(json.dumps(row, ensure_ascii=False))


def _paths(groups, path_of, *, nul: bool) -> None:
    """The raw bytes of every copy not kept, so any file name survives a pipe."""
    out = sys.stdout.buffer
    sys.stdout.flush()
    sep = b"\0" if nul else b"\n"
    for group in groups:
        for m in group.copies:
            out.write(os.fsencode(path_of(m.key)) + sep)
    out.flush()
