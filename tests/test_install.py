"""Install works as written: the wheel carries the bundled models and needs no PyTorch, it runs
`index` and `query` on its own, and no text tells a user to install a name that is not published."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {"torch", "onnx"}  # onnxruntime is a base dependency; these two belong to the train extra only


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source (so the checkout gets no build/ or egg-info),
    offline: no build isolation, no dependencies fetched."""
    assert build_backend() == "setuptools.build_meta"
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "imgret", src / "imgret", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    # The build backend the pyproject names, called as pip's --no-build-isolation build calls it, less
    # pip's own start-up (a second and a half).
    build = "import sys, setuptools.build_meta as backend; backend.build_wheel(sys.argv[1])"
    run = subprocess.run([sys.executable, "-c", build, str(out)], capture_output=True, text=True, timeout=120,
                         cwd=src)
    assert run.returncode == 0, run.stdout + run.stderr
    (built,) = out.glob("imgret-*.whl")
    return built


def test_the_wheel_carries_every_bundled_model_and_its_card(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = sorted(p.name for p in (ROOT / "imgret" / "models").iterdir() if p.suffix in (".onnx", ".md"))
    assert any(n.endswith(".onnx") for n in bundled) and any(n.endswith(".md") for n in bundled)
    assert [n for n in bundled if f"imgret/models/{n}" not in names] == []


def test_the_wheel_declares_no_torch_or_onnx_base_dependency(wheel):
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode()
    requires = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    base_names = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower() for r in base}
    assert "onnxruntime" in base_names and not (base_names & HEAVY)
    train = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower() for r in requires if "extra == \"train\"" in r}
    assert HEAVY <= train  # the extra the error message names really brings them


def test_the_installed_wheel_indexes_and_queries_with_its_bundled_model(wheel, tmp_path):
    """Installed into a folder of its own (the way an app bundles it), the wheel's copy of imgret runs
    `index` and `query` with the default model it carries; the dependencies come from this venv."""
    target = tmp_path / "app"
    run = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                          str(target), str(wheel)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    for picture in sorted((ROOT / "examples").glob("*.jpg"))[:4]:
        shutil.copy2(picture, photos / picture.name)
    env = {**os.environ, "PYTHONPATH": str(target), "IMGRET_LIBRARY": str(tmp_path / "lib")}

    def imgret(*args):
        return subprocess.run([sys.executable, "-m", "imgret", *args], capture_output=True, text=True, timeout=120,
                              env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)

    where = subprocess.run([sys.executable, "-c", "import imgret; print(imgret.__file__)"], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    assert imgret("index", str(photos), "--no-progress").returncode == 0
    first = sorted(photos.iterdir())[0]
    q = imgret("query", str(first), "-N", "2", "--paths")
    assert q.returncode == 0, q.stderr
    assert len(q.stdout.splitlines()) == 2


def build_backend() -> str:
    """The build backend pyproject.toml names (the one the wheel fixture calls)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^build-backend\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)


# -- install lines -----------------------------------------------------------------------------------

PUBLISHED_NOTE = re.compile(r"once (it is |imgret is )?published", re.IGNORECASE)


def asks_for_unpublished(line: str) -> bool:
    """Whether ``line`` has a ``pip install`` of the name ``imgret`` (``imgret``, ``'imgret[train]'``),
    not of a path (``.``, ``dist/imgret-0.1.0.whl``)."""
    for command in line.split("pip install")[1:]:
        for token in re.split(r"[\s`;&|]+", command):
            name = token.strip("'\"")
            if name == "imgret" or name.startswith("imgret["):
                return True
    return False


def _texts():
    """Every file whose text a user reads as instructions: READMEs and the package's messages."""
    files = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "imgret").rglob("*.py"))]
    return [f for f in files if f.exists()]


@pytest.mark.parametrize(
    "path",
    _texts(),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_text_asks_for_a_package_that_is_not_published(path):
    """`pip install imgret` and `pip install 'imgret[train]'` fail today (not on the index): only a
    line that says it is for once imgret is published may show them."""
    bad = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if asks_for_unpublished(line) and not PUBLISHED_NOTE.search(line):
            bad.append(f"{number}: {line.strip()}")
    assert bad == []


@pytest.mark.parametrize("line, asks", [
    ("pip install imgret", True),
    ("imgret train needs PyTorch: pip install 'imgret[train]'", True),
    ("pip install torch==2.13.0 'imgret[train]'", True),
    ("pip install .", False),
    ("pip install torch==2.13.0 && pip install '.[train]'", False),
    ("pip install dist/imgret-0.1.0-py3-none-any.whl", False),
    ("python3 -m venv .venv && .venv/bin/pip install -q . && .venv/bin/imgret index examples", False),
])
def test_the_install_line_check_tells_a_name_from_a_path(line, asks):
    assert asks_for_unpublished(line) is asks


def test_the_train_install_hint_names_what_works_today():
    from imgret.cli.errors import TRAIN_INSTALL_HINT

    hint = TRAIN_INSTALL_HINT.format(cmd="train")
    assert not asks_for_unpublished(hint)
    assert "torch==2.13.0" in hint and "onnx" in hint and "'.[train]'" in hint
