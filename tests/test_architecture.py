"""The shape of the package, checked: no import cycles, and no torch/onnx on the runtime path.

Imports are read with ``ast`` from every module under ``imgret``, including imports inside functions
(a lazy import still ties two modules together), so a cycle fails here before it confuses a reader.
"""

from __future__ import annotations

import ast
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import write_scenes

import imgret

PACKAGE = Path(imgret.__file__).resolve().parent


def module_files() -> dict[str, Path]:
    """Every module under imgret by dotted name (packages by their ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.cache
def parsed(path: Path) -> ast.Module:
    """The syntax tree of one source file, parsed once per test process (the files do not change)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The imgret modules ``name`` imports anywhere in its source (``from a import b`` counts as
    ``a.b`` when that is a module, else as ``a``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_read_including_function_level_imports():
    graph = import_graph()
    assert "imgret.runtime.library" in graph
    assert "imgret.runtime.indexer" in graph["imgret.runtime.library"]
    assert "imgret.models" in graph["imgret.runtime.library"]  # imported inside a function


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere_in_imgret():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", ["imgret.runtime", "imgret.models"])
def test_runtime_and_models_never_import_train_export_or_cli(layer):
    graph = import_graph()
    for name, deps in graph.items():
        if name == layer or name.startswith(layer + "."):
            bad = {d for d in deps if d.split(".")[1] in ("train", "export", "cli")}
            assert not bad, f"{name} imports {sorted(bad)}"


NO_TORCH_SCRIPT = """
import sys
from imgret.runtime.library import Library
from imgret.cli import cli
import imgret.runtime.encoder, imgret.runtime.montage, imgret.runtime.search, imgret.models
with Library.open({lib!r}) as lib:
    lib.query([{photo!r}], 2)
bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx')]
print('LOADED', bad)
"""


def test_index_and_query_path_never_imports_torch_or_onnx(tmp_path, fake_model):
    from imgret.runtime.library import Library

    photos = tmp_path / "p"
    write_scenes(photos, 4)
    with Library.open_writable(tmp_path / "lib", model=fake_model) as lib:
        lib.index(photos, workers=0)
    script = NO_TORCH_SCRIPT.format(lib=str(tmp_path / "lib"), photo=str(photos / "scene000.png"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    assert "LOADED []" in out.stdout


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(name):
            yield node


def test_no_pickle_anywhere_in_imgret():
    files = module_files()
    for module, path in files.items():
        tree = parsed(path)
        imported = imports_of(module, path, {"pickle", "dill", "joblib", "cloudpickle"} | set(files))
        assert not {"pickle", "dill", "joblib", "cloudpickle"} & imported, module
        for call in _calls(tree, "torch.load"):
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            assert kw.get("weights_only") == "True", f"{module}: torch.load without weights_only=True"
        for call in (*_calls(tree, "np.load"), *_calls(tree, "numpy.load")):
            kw = {k.arg: ast.unparse(k.value) for k in call.keywords}
            assert kw.get("allow_pickle", "False") == "False", f"{module}: np.load with allow_pickle"


MAX_FUNCTION_LINES = 60


def test_every_function_in_imgret_fits_on_a_screen():
    """Issue 11: no function in imgret/ over 60 lines (decorators and docstring included)."""
    too_long = []
    for name, path in module_files().items():
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {lines} lines")
    assert not too_long, too_long
