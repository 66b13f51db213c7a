"""The page in a real headless Chromium: every thumbnail loads, no console errors, and a screenshot
shows something.

Chromium is driven over ``--remote-debugging-pipe`` (the DevTools protocol on file descriptors 3 and
4), so nothing listens on a port and no Python package is needed. Skipped, with the reason, where
Debian's ``chromium`` is not installed (``apt-get install -y chromium``). Set
``IMGRET_PAGE_SCREENSHOT=FILE.png`` to keep the screenshot of the dups page written by ``imgret dups
--html`` (the README's picture of a dups page).
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from imgret.runtime.dups import DupGroup, DupMember
from imgret.runtime.page import dups_section, query_section, write_page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")
TIMEOUT = 30.0


class Browser:
    """A headless Chromium and one page of it, spoken to over the DevTools pipe."""

    def __init__(self, profile: Path) -> None:
        cmd_r, self.cmd_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1200,900"]
        # the shell puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them
        shell = shutil.which("bash") or "sh"  # dash cannot redirect from fds above 9
        self.proc = subprocess.Popen([shell, "-c", f'exec "$@" 3<&{cmd_r} 4>&{resp_w}', "sh", CHROMIUM, *flags],
                                     pass_fds=(cmd_r, resp_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(resp_w)
        self.next_id, self.buffer, self.events, self.session = 0, b"", [], None

    def send(self, method: str, params: dict | None = None) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self.cmd_w, json.dumps(message).encode() + b"\0")
        reply = self.wait(lambda m: m.get("id") == self.next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait(self, wanted) -> dict:
        """Read messages until one satisfies ``wanted``; events met on the way are kept."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.resp_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.resp_r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk

    def open(self, url: str) -> None:
        """Open ``url`` in a new tab and make it the page spoken to; events of earlier tabs are dropped."""
        self.session, self.events = None, []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait(lambda m: m.get("method") == "Page.loadEventFired")

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"]["value"]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations, failed loads)."""
        out = []
        for e in self.events:
            if e.get("sessionId") != self.session:  # another tab's (the browser is shared by the module)
                continue
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args")))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails")))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def close(self) -> None:
        try:
            self.session = None
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.resp_r)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for the module (each start costs about a second of CPU); each page gets its own tab."""
    shared = Browser(tmp_path_factory.mktemp("profile"))
    yield shared
    shared.close()


def picture(path: Path, colour: tuple[int, int, int], size: tuple[int, int], fmt: str) -> Path:
    img = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(img)
    draw.ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=(250, 250, 240))
    img.save(path, format=fmt)
    return path


def test_dups_and_query_page_load_cleanly_in_chromium(tmp_path, browser):
    pics = tmp_path / "pictures"
    pics.mkdir()
    colours = [(200, 40, 40), (40, 140, 60), (40, 70, 190)]
    names = ["sunset.jpg", "sunset copy <1>.png", 'sunset "small" & co.jpg']
    files = []
    for g, colour in enumerate(colours):
        for i, name in enumerate(names):
            fmt = "PNG" if name.endswith(".png") else "JPEG"
            size = (640 - 200 * i, 480 - 150 * i)
            files.append(picture(pics / f"g{g} {name}", colour, size, fmt))
    groups = [DupGroup(keep=3 * g, members=(DupMember(3 * g, 0.0), DupMember(3 * g + 1, 0.012),
                                               DupMember(3 * g + 2, 0.0, identical=True)))
              for g in range(len(colours))]
    sections = [dups_section(groups, lambda k: files[k]),
                query_section([(files[0], [(files[3], 0.21), (files[6], 0.34)])])]
    page = write_page(tmp_path / "page", "imgret dups: 3 groups", sections)

    images, errors, shot = look_at(browser, page)
    assert len(images) == 12
    assert_clean(images, errors, shot)


def assert_clean(images, errors, shot) -> None:
    """Every thumbnail loaded, nothing went wrong, and the screenshot is not blank."""
    assert images and all(complete and width > 0 for complete, width in images), images
    assert errors == []
    grey = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
    assert grey.shape[0] > 100 and grey.std() > 20, "the screenshot is blank"


def look_at(browser: Browser, page: Path) -> tuple[list, list, bytes]:
    """Open ``page`` from file://; its images' (complete, naturalWidth), its errors, a PNG screenshot."""
    browser.open(page.as_uri())
    images = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
    return images, browser.errors(), shot


def test_pages_written_by_imgret_dups_and_query_load_cleanly(imgret, tmp_path, browser):
    """The pages the commands write, from a library of real copies: the README's screenshot of a dups
    page is this test's (``IMGRET_PAGE_SCREENSHOT=docs/dups-page.png``)."""
    from copies_fixture import write_collection

    write_collection(tmp_path / "photos")
    assert imgret("index", tmp_path / "photos").code == 0
    assert imgret("dups", "--html", tmp_path / "dups").code == 0
    query = imgret("query", tmp_path / "photos" / "p1.png", tmp_path / "photos" / "p5.png", "-N", "4",
                   "--html", tmp_path / "query")
    assert query.code == 0, query.stderr
    images, errors, shot = look_at(browser, tmp_path / "dups" / "index.html")
    assert len(images) == 11
    assert_clean(images, errors, shot)
    if os.environ.get("IMGRET_PAGE_SCREENSHOT"):
        Path(os.environ["IMGRET_PAGE_SCREENSHOT"]).write_bytes(shot)
    images, errors, shot = look_at(browser, tmp_path / "query" / "index.html")
    assert len(images) == 10
    assert_clean(images, errors, shot)
