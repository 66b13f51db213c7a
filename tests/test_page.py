"""The static page: hostile file names stay text, thumbnails are written and linked relatively,
originals are linked as percent-encoded file:// URLs."""

from __future__ import annotations

import html.parser
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image

from imgret.runtime.dups import DupGroup, DupMember
from imgret.runtime.page import dups_section, eval_section, file_url, query_section, write_page

HOSTILE = ['<img src=x onerror=alert(1)>.png', 'a&b "quoted" \'single\'.png', "50% #hash ?q.png"]


class Collect(html.parser.HTMLParser):
    """Every start tag with its attributes, and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def pictures(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        path = folder / name
        Image.new("RGB", (40 + i, 30), (30 * i % 255, 90, 160)).save(path, format="PNG")
        out.append(path)
    return out


def parse(page: Path) -> Collect:
    c = Collect()
    c.feed(page.read_text(encoding="utf-8"))
    return c


def test_hostile_names_stay_text_and_links_point_at_the_files(tmp_path):
    files = pictures(tmp_path / "pics", HOSTILE)
    page = write_page(tmp_path / "out", "query <b>", [query_section([(files[0], [(files[1], 0.01), (files[2], 0.2)])])])
    parsed = parse(page)
    tags = [t for t, _ in parsed.tags]
    assert tags.count("img") == 3 and "script" not in tags and "b" not in tags
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    text = "".join(parsed.text)
    for name in HOSTILE:
        assert name in text  # shown as itself
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert [Path(unquote(urlparse(h).path)) for h in hrefs] == [f.resolve() for f in files]
    assert all(h.startswith("file:///") and "#" not in h and "?" not in h and " " not in h for h in hrefs)


def test_thumbnails_are_written_beside_the_page_and_linked_relatively(tmp_path):
    files = pictures(tmp_path / "pics", ["a.png", "b.png", "c.png"])
    group = DupGroup(keep=0, members=(DupMember(0, 0.0), DupMember(1, 0.03), DupMember(2, 0.0, identical=True)))
    page = write_page(tmp_path / "out", "copies", [dups_section([group], lambda k: files[k])])
    srcs = [a["src"] for t, a in parse(page).tags if t == "img"]
    assert len(srcs) == 3 and len(set(srcs)) == 3
    for src in srcs:
        assert not os.path.isabs(src) and src.startswith("thumbs/")
        with Image.open(page.parent / src) as thumb:
            assert thumb.format == "JPEG" and max(thumb.size) <= 256
    figures = [a.get("class") for t, a in parse(page).tags if t == "figure"]
    assert figures == ["keep", None, None]


def test_unreadable_picture_gets_a_placeholder_and_eval_marks_wrong_hits(tmp_path):
    good = pictures(tmp_path / "pics", ["q.png", "h.png"])
    broken = tmp_path / "pics" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    section = eval_section([(good[0], "cats", [(good[1], 0.1, "cats"), (broken, 0.2, "dogs")])])
    page = write_page(tmp_path / "out", "eval", [section])
    parsed = parse(page)
    srcs = [a["src"] for t, a in parsed.tags if t == "img"]
    assert srcs[2] == "thumbs/missing.jpg" and (page.parent / srcs[2]).is_file()
    assert [a.get("class") for t, a in parsed.tags if t == "figure"] == ["query", None, "wrong"]


def test_non_utf8_file_names_are_shown_escaped_and_linked(tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9.png"
    Image.new("RGB", (8, 8)).save(os.fsdecode(raw), format="PNG")
    page = write_page(tmp_path / "out", "t", [query_section([(raw, [])])])
    assert "caf\\xe9.png" in page.read_text(encoding="utf-8")
    assert file_url(raw).endswith("/caf%E9.png")
