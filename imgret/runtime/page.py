"""A static HTML page of pictures to look at: queries beside their results, groups of copies, eval's
worst queries.

The page is one ``index.html`` plus a ``thumbs/`` folder of small JPEGs, all written into one folder:
no network, no script, relative links to the thumbnails, so the folder can be opened from ``file://``
or moved as a whole. Each thumbnail links to its original as a percent-encoded ``file://`` URL. Every
piece of text (paths above all) is HTML-escaped, so a file named ``<img src=x onerror=...>.jpg`` shows
as its name and nothing more.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imgret.errors import ImageError
from imgret.runtime import atomic, imageio
from imgret.runtime.dups import DupGroup
from imgret.runtime.progress import ProgressCallback

THUMB_SIDE = 256
THUMB_FOLDER = "thumbs"
MISSING_THUMB = "missing.jpg"
PagePath = str | bytes | os.PathLike


@dataclass(frozen=True)
class Tile:
    """One picture on the page: its file, a caption under it (a distance, a label) and a mark
    (``"query"``, ``"keep"``, ``"wrong"`` or ``""``) that frames it."""

    path: PagePath
    caption: str = ""
    mark: str = ""


@dataclass(frozen=True)
class Row:
    """Pictures side by side under a title: a query and its hits, or one group of copies."""

    title: str
    tiles: Sequence[Tile]


@dataclass(frozen=True)
class Section:
    """A heading, an optional note and its rows."""

    heading: str
    rows: Sequence[Row]
    note: str = ""


def query_section(results: Iterable[tuple[PagePath, Sequence[tuple[PagePath, float]]]],
                  heading: str = "Queries") -> Section:
    """A section of queries, each beside its ``(path, distance)`` hits in rank order."""
    rows = []
    for query, hits in results:
        tiles = [Tile(query, "query", "query")]
        tiles += [Tile(path, f"{rank}. {dist:.4f}") for rank, (path, dist) in enumerate(hits, 1)]
        rows.append(Row(display_path(query), tiles))
    return Section(heading, rows)


def dups_section(groups: Iterable[DupGroup], path_of: Callable[[int], PagePath],
                 heading: str = "Copies") -> Section:
    """A section of duplicate groups, the kept file first and marked, each copy with its distance."""
    rows = []
    for n, group in enumerate(groups, 1):
        tiles = []
        for m in group.members:
            if m.key == group.keep:
                caption, mark = "keep", "keep"
            else:
                caption, mark = ("identical" if m.identical else f"{m.distance_to_keep:.4f}"), ""
            if m.facts is not None:
                caption += f"  {pixels_text(m.facts.pixels)}, {m.facts.bytes / 1e3:.0f} kB"
            tiles.append(Tile(path_of(m.key), caption, mark))
        rows.append(Row(f"group {n}: {len(group)} files", tiles))
    return Section(heading, rows, note="The framed picture is the one to keep; imgret never deletes.")


def eval_section(worst: Iterable[tuple[PagePath, str, Sequence[tuple[PagePath, float, str]]]],
                 heading: str = "Worst queries") -> Section:
    """A section of evaluation queries ``(path, label, hits)`` whose hits are ``(path, distance, label)``;
    hits of another label than the query's are marked wrong."""
    rows = []
    for query, label, hits in worst:
        tiles = [Tile(query, f"query: {label}", "query")]
        for rank, (path, dist, hit_label) in enumerate(hits, 1):
            mark = "" if hit_label == label else "wrong"
            tiles.append(Tile(path, f"{rank}. {dist:.4f} {hit_label}", mark))
        rows.append(Row(f"{display_path(query)} ({label})", tiles))
    return Section(heading, rows)


def write_page(folder: PagePath, title: str, sections: Sequence[Section], *,
               progress: ProgressCallback | None = None, threads: int | None = None) -> Path:
    """Write ``folder/index.html`` and the thumbnails it shows into ``folder`` (created if missing);
    return the page's path. Thumbnails already there for an unchanged file are reused."""
    out = Path(os.fsdecode(folder))
    (out / THUMB_FOLDER).mkdir(parents=True, exist_ok=True)
    sources = list(dict.fromkeys(os.fsencode(t.path) for s in sections for r in s.rows for t in r.tiles))
    names = _thumbnails(out / THUMB_FOLDER, sources, progress, threads)
    page = out / "index.html"
    atomic.write_text(page, _render(title, sections, names))
    return page


def pixels_text(pixels: int) -> str:
    """A pixel count for people: megapixels, or plain pixels below 0.1 MP (where 0.00 MP says nothing)."""
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels:,} px"


def display_path(path: PagePath) -> str:
    """A path as text to show: undecodable bytes and control characters as backslash escapes."""
    text = os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def file_url(path: PagePath) -> str:
    """An absolute ``file://`` URL for ``path``, every byte outside ``A-Za-z0-9_.-~/`` percent-encoded."""
    return Path(os.path.abspath(os.fsdecode(path))).as_uri()


def _thumb_name(source: bytes) -> str:
    """Named by a hash of the absolute path, size and mtime, so a changed file gets a new thumbnail."""
    path = os.path.abspath(source)
    try:
        st = os.stat(path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}".encode()
    except OSError:
        stamp = b"missing"
    return hashlib.sha256(path + b"\0" + stamp).hexdigest()[:24] + ".jpg"


def _thumbnails(folder: Path, sources: list[bytes], progress, threads) -> dict[bytes, str]:
    """Make every source's thumbnail (in parallel: decoding releases the GIL); map source -> file name."""
    _write_missing(folder / MISSING_THUMB)
    names: dict[bytes, str] = {}

    def one(source: bytes) -> str:
        name = _thumb_name(source)
        target = folder / name
        if target.is_file():
            return name
        try:
            img = imageio.decode(imageio.read_image_bytes(source), THUMB_SIDE)
        except ImageError:
            return MISSING_THUMB
        img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
        atomic.write_with(target, lambda fh: img.save(fh, "JPEG", quality=85))
        return name

    with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
        for done, (source, name) in enumerate(zip(sources, pool.map(one, sources)), 1):
            names[source] = name
            if progress is not None:
                progress(done, len(sources), "thumbnails")
    return names


def _write_missing(path: Path) -> None:
    """The picture shown for a file that cannot be read: a plain grey square."""
    if not path.is_file():
        img = Image.new("RGB", (64, 64), (200, 200, 200))
        atomic.write_with(path, lambda fh: img.save(fh, "JPEG", quality=85))


STYLE = """
body { font-family: sans-serif; margin: 1em 2em; background: #fafafa; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.5em; } .note { color: #555; }
.row { margin: 0.8em 0; padding-bottom: 0.6em; border-bottom: 1px solid #ddd; }
.row h3 { font-size: 0.95em; font-weight: normal; margin: 0.2em 0; word-break: break-all; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; width: 180px; border: 3px solid transparent; padding: 2px; background: #fff; }
figure img { display: block; max-width: 176px; max-height: 176px; margin: auto; }
figcaption { font-size: 0.75em; word-break: break-all; }
figure.query { border-color: #2a5db0; } figure.keep { border-color: #2e8b3a; }
figure.wrong { border-color: #c0392b; } .mark { font-weight: bold; }
"""


def _render(title: str, sections: Sequence[Section], names: dict[bytes, str]) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             # no script, no network: only the page's own images and inline style may load
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
             'img-src \'self\' data:; style-src \'unsafe-inline\'">',
             '<link rel="icon" href="data:,">', f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>",
             f"</head><body><h1>{esc(title)}</h1>"]
    for section in sections:
        parts.append(f"<section><h2>{esc(section.heading)}</h2>")
        if section.note:
            parts.append(f'<p class="note">{esc(section.note)}</p>')
        for row in section.rows:
            parts.append(f'<div class="row"><h3>{esc(row.title)}</h3><div class="tiles">')
            parts += [_figure(tile, names[os.fsencode(tile.path)]) for tile in row.tiles]
            parts.append("</div></div>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _figure(tile: Tile, thumb: str) -> str:
    esc = html.escape
    shown = display_path(tile.path)
    mark = f' class="{esc(tile.mark)}"' if tile.mark else ""
    label = f'<span class="mark">{esc(tile.mark)}</span> ' if tile.mark and not tile.caption.startswith(tile.mark) else ""
    return (f'<figure{mark}><a href="{esc(file_url(tile.path))}"><img src="{THUMB_FOLDER}/{esc(thumb)}" '
            f'alt="{esc(shown)}" title="{esc(shown)}"></a>'
            f"<figcaption>{label}{esc(tile.caption)}<br>{esc(os.path.basename(shown))}</figcaption></figure>")
