"""``--html DIR``: the static page of pictures that ``query``, ``dups`` and ``eval`` can also write."""

from __future__ import annotations

import click

from imgret.cli.output import printable
from imgret.runtime.progress import Progress

html_option = click.option(
    "--html", "html_dir", type=click.Path(file_okay=False, path_type=str), default=None, metavar="DIR",
    help="Also write a page to look at: DIR/index.html with thumbnails beside it (no network, no script; "
         "open it in a browser).")


def write(folder: str, title: str, sections, *, progress: bool | None = None) -> None:
    """Write the page (thumbnails with a progress bar on stderr) and say where it is."""
    from imgret.runtime.page import write_page

    bar = Progress("thumbnails", enabled=progress)
    try:
        page = write_page(folder, title, sections, progress=bar)
    finally:
        bar.close()
    click.echo(f"page written to {printable(str(page))}", err=True)


def query_sections(results) -> list:
    """The page's section of answered queries, each beside its hits (copies folded in are left out)."""
    from imgret.runtime.page import query_section

    answered = [r for r in results if r.error is None]
    return [query_section([(r.query, [(h.path, h.distance) for h in r.hits]) for r in answered])]
