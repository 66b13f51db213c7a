"""More freely licensed photographs for photo-conv-v2, beyond the 59 of ``benchmarks/photos.py``.

Each source lists ``(key, path, package, licence, author)`` entries, like ``photos.collect`` does:

* **scikit-image** extras (``skimage/data``): camera (CC0, Lav Varshney), brick, grass, gravel (CC0
  Textures), retina (CC0), coins (Brooklyn Museum, no known copyright restrictions),
  immunohistochemistry (no known copyright restrictions), all as stated in
  ``skimage/data/_fetchers.py``. Left out: moon, page, text (no licence stated), horse
  (a silhouette), cell and microaneurysms (tiny grey lab pictures), the motorcycle pair (no licence).
* **matplotlib** ``mpl-data/sample_data/grace_hopper.jpg``: US Navy photograph, public domain.
* **stellarium-data** ``nebulae/default``: astronomy photographs of at least :data:`MIN_SIDE` px,
  credited per picture in its ``textures.json``; Debian's copyright file covers ``Files: *`` under
  GPL-2+, with per-author terms in ``CREDITS.md`` section 4 ("use the image freely", CC-BY,
  CC-BY-SA, public domain). Sky-survey cut-outs (DSS, SDSS, 2MASS) are left out: their survey
  terms are not a free licence.
* **tuxpaint-stamps-default** photographic stamps (GPL-2) **outside** the class benchmark's folders
  (``benchmarks/photo_classes.py``), composited on white by imgret's decoder. Symbols, town,
  clothes, ``cartoon`` folders, mirror copies and the drawings in :data:`STAMP_DRAWINGS` (by eye) are
  left out.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import photo_classes  # noqa: E402  (benchmarks/photo_classes.py)

Entry = tuple[str, str, str, str, str]  # key, path, package, licence, author
MIN_SIDE = 256
SURVEYS = re.compile(r"\b(DSS|SDSS|2MASS|Digitized Sky Survey)\b", re.IGNORECASE)
STELLARIUM_LICENCE = "GPL-2+ (debian/copyright Files: *); author's terms in CREDITS.md section 4"

SKIMAGE_EXTRA = {
    "data/camera.png": ("CC0", "Lav Varshney"),
    "data/brick.png": ("CC0 (CC0Textures)", "CC0Textures"),
    "data/grass.png": ("CC0 (CC0Textures)", "CC0Textures"),
    "data/gravel.png": ("CC0 (CC0Textures)", "CC0Textures"),
    "data/retina.jpg": ("CC0", "Häggström et al. (Wikimedia Commons)"),
    "data/coins.png": ("no known copyright restrictions (Brooklyn Museum)", "Brooklyn Museum"),
    "data/ihc.png": ("no known copyright restrictions", "Gobiwan (Wikimedia Commons)"),
}
MATPLOTLIB = {"mpl-data/sample_data/grace_hopper.jpg": ("public domain (US Navy photograph)", "US Navy")}
# Training stamps that are drawings, clip art or sprites (file stems), judged by eye.
STAMP_DRAWINGS = frozenset({
    "bee", "fly", "pizza", "tooth", "lightningbolt", "eye", "Santa", "bow", "candy_cane", "hard_candy",
    "lamp", "santahat", "star", "stocking", "tree", "xmas_tp_bulb", "bluebird", "bunny-egg",
    "bunny-head", "bunny", "butterfly", "chick-hatched", "chick-in-egg", "chick", "daffodil",
    "wrapped_chocolate_easter_egg", "wrapped_chocolate_easter_egg_2", "bat_left", "blackcat", "ghost",
    "jackolantern_mean",
    "skull", "spider", "dreydl-gimmel", "dreydl-hay", "dreydl-nun", "dreydl-shin", "dreydl",
    "holiday_candle", "menorah", "confetti", "fireworks", "fireworks2", "party-hat", "party-horn-in",
    "party-horn-out", "rugby_goal_posts",
})
STAMP_SKIP_TOP = {"symbols", "town", "clothes"}


def _module_root(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # locates, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def wheel_extras() -> list[Entry]:
    """The extra scikit-image pictures and matplotlib's Grace Hopper, where those wheels are installed."""
    out = []
    for package, module, files in (("scikit-image", "skimage", SKIMAGE_EXTRA),
                                    ("matplotlib", "matplotlib", MATPLOTLIB)):
        root = _module_root(module)
        for rel, (licence, author) in sorted(files.items()):
            if root is not None and (root / rel).is_file():
                out.append((f"{package}:{rel}", str(root / rel), package, licence, author))
    return out


def stellarium_nebulae(share: Path) -> list[Entry]:
    """Nebula and galaxy photographs of stellarium-data, credited, sky surveys left out."""
    from PIL import Image

    folder = share / "stellarium" / "nebulae" / "default"
    if not (folder / "textures.json").is_file():
        return []
    text = (folder / "textures.json").read_text(encoding="utf-8")
    # the file is JSON with a few syntax slips upstream, so credits are read pair by pair
    pairs = re.findall(r'"imageCredits"\s*:\s*(\{[^}]*\})\s*,\s*"imageUrl"\s*:\s*"([^"]+)"', text)
    out, seen = [], set()
    for credit_text, name in pairs:
        credit = {k.lower(): v for k, v in json.loads(credit_text).items()}
        author = credit.get("short", "")
        path = folder / name
        if name in seen or not path.is_file() or SURVEYS.search(author):
            continue
        seen.add(name)
        with Image.open(path) as im:
            if max(im.size) < MIN_SIDE:
                continue
        out.append((f"stellarium-data:nebulae/default/{name}", str(path), "stellarium-data",
                    STELLARIUM_LICENCE, author))
    return out


def tuxpaint_stamps(share: Path) -> list[Entry]:
    """Photographic stamps outside the class benchmark's folders (those are never trained on)."""
    root = share / photo_classes.STAMPS
    if not root.is_dir():
        return []
    benchmark = tuple(f + "/" for folders in photo_classes.CLASSES.values() for f in folders)
    out = []
    for path in sorted(root.rglob("*.png")):
        rel = path.relative_to(root)
        if (rel.parts[0] in STAMP_SKIP_TOP or "cartoon" in rel.parts or path.stem.endswith("_mirror")
                or path.stem in STAMP_DRAWINGS or rel.as_posix().startswith(benchmark)):
            continue
        out.append((f"tuxpaint-stamps-default:{rel.as_posix()}", str(path), "tuxpaint-stamps-default",
                    photo_classes.LICENCE, "Tux Paint stamps contributors"))
    return out


def class_benchmark_stamps(packages: str | Path) -> list[Entry]:
    """The class benchmark's pictures, to be listed as held out (never cropped for training)."""
    stamps, _ = photo_classes.collect(packages)
    return [(s.key, s.path, "tuxpaint-stamps-default", photo_classes.LICENCE, "Tux Paint stamps contributors")
            for s in stamps]


def extra_photos(packages: str | Path) -> list[Entry]:
    """Every extra trainable source above, in a stable order."""
    share = Path(packages) / "usr" / "share"
    return sorted(wheel_extras() + stellarium_nebulae(share) + tuxpaint_stamps(share))
