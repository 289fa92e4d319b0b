"""Imports point one way, and no package imports itself in a loop (read from the source, with ``ast``).

- ``framework/`` never imports ``emulator/``: the core reaches the emulator through hooks and
  entry points only (pytest's core never imports its bundled plugins by name).
- Inside each package (``framework``, ``emulator``), no file loop: module A importing B importing
  ... A (lazy imports inside functions count; ``if TYPE_CHECKING:`` imports do not).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("framework", "emulator")

# File loops being removed by the other parts of issue 21 (remove each line once its loop is gone):
KNOWN_LOOPS: set[frozenset[str]] = set()  # none left; a loop that must stay for a while is named here




# -- reading imports ---------------------------------------------------------------------------------
def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return found


def imported_names(source: str, module: str, *, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module ``source`` imports at run time: ``import x``, ``from x import y``
    (both ``x`` and ``x.y``, which may be a module), relative imports resolved against ``module``, and
    ``importlib.import_module("literal")`` / ``__import__("literal")``."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[:len(base_parts) - (node.level - 1)] if node.level > 1 else base_parts
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names
                                            if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value))
    return out


def package_files(package: str, root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def emulator_imports(files: dict[str, Path], root: Path = REPO) -> list[str]:
    """``file:line: name`` for each import of ``emulator`` in ``files``."""
    found = []
    for module, path in files.items():
        for line, name in imported_names(path.read_text(), module, is_package=path.name == "__init__.py"):
            if name == "emulator" or name.startswith("emulator."):
                found.append(f"{path.relative_to(root)}:{line}: {name}")
    return found


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ``files`` it imports (a name that is no file of ``files`` is dropped)."""
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = set()
        names = [name for _, name in imported_names(path.read_text(), module, is_package=path.name == "__init__.py")]
        for name in names:
            # ``from package import module`` imports the module; the package is already imported
            if name in files and name != module and not any(n.startswith(name + ".") and n in files for n in names):
                targets.add(name)
        graph[module] = targets
    return graph


def loops(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# -- the guards --------------------------------------------------------------------------------------
def test_the_framework_never_imports_the_emulator():
    assert emulator_imports(package_files("framework")) == []


@pytest.mark.parametrize("line", [
    "import emulator",
    "import emulator.settings as S",
    "from emulator import AutoMLConfig",
    "from emulator.task_types import get_task",
    "def lazy():\n    from emulator import metrics\n",
    "import importlib\nimportlib.import_module('emulator.api')\n",
    "__import__('emulator')",
])
def test_the_guard_catches_a_planted_import(tmp_path, line):
    planted = tmp_path / "framework" / "commands" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from __future__ import annotations\n\n" + line + "\n")
    assert emulator_imports(package_files("framework", tmp_path), tmp_path) != []


def test_the_guard_ignores_what_is_not_an_emulator_import(tmp_path):
    planted = tmp_path / "framework" / "quiet.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import emulator\n"
                       "import emulators_elsewhere\nNAME = 'emulator.api'\n")
    assert emulator_imports(package_files("framework", tmp_path), tmp_path) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_file_loops_inside_a_package(package):
    found = [sorted(loop) for loop in loops(import_graph(package_files(package))) if loop not in KNOWN_LOOPS]
    assert found == []


def test_the_loop_finder_finds_a_planted_loop(tmp_path):
    root = tmp_path / "framework"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("from .sub import b\n")
    (root / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (root / "c.py").write_text("import framework.a\n")
    (root / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    graph = import_graph(package_files("framework", tmp_path))
    assert loops(graph) == [frozenset({"framework.a", "framework.sub.b", "framework.c"})]
