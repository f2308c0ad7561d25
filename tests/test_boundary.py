"""The house's boundaries: the core is pure, and no module imports in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lab93zmq"
CORE = PACKAGE / "core"
# What a pure module may never reach, directly or through anything it imports.
FORBIDDEN = ("zmq", "peewee", "prompt_toolkit", "netifaces", "docopt")
# What a core module may never import itself, though the standard library has it:
# the cores take time, sockets and threads from their shells (house rule 1).
NO_IO = {"socket", "select", "selectors", "threading", "time", "asyncio", "sqlite3", "os"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


CORE_MODULES = sorted(_module_name(path) for path in CORE.rglob("*.py"))

# Run in a fresh interpreter: a finder that refuses every forbidden package, so an
# import anywhere on the way (the package's own __init__ included) fails loudly.
_BLOCKED_IMPORT = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {forbidden!r}:
            raise ImportError(f"{{name}} is not allowed in the core")
        return None
sys.meta_path.insert(0, Refuse())
import {module}
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {forbidden!r})
assert not leaked, leaked
"""


def test_the_core_has_modules():
    assert len(CORE_MODULES) >= 12  # the walk found the package, not an empty folder


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_imports_without_zmq_peewee_or_prompt_toolkit(module):
    code = _BLOCKED_IMPORT.format(module=module, forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert result.returncode == 0, result.stderr


def test_the_blocker_really_blocks():
    """The check above can fail: a module that needs zmq is refused."""
    code = _BLOCKED_IMPORT.format(module="lab93zmq.io.sockets", forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert result.returncode != 0
    assert "not allowed in the core" in result.stderr


def _imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) for every import in ``path``, relative ones resolved, lazy ones too."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # "from . import wire" imports the module lab93zmq.core.wire
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


@pytest.mark.parametrize("module", CORE_MODULES)
def test_a_core_module_imports_only_the_standard_library_and_the_core(module):
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    wrong = []
    for imported, line in _imports(path):
        top = imported.split(".")[0]
        if top == "lab93zmq":
            if imported != "lab93zmq.core" and not imported.startswith("lab93zmq.core."):
                wrong.append(f"line {line}: {imported}")
        elif top in NO_IO or top in FORBIDDEN:
            wrong.append(f"line {line}: {imported}")
        elif top != "__future__" and top not in sys.stdlib_module_names:
            wrong.append(f"line {line}: {imported} (not the standard library)")
    assert not wrong, f"{module} imports " + ", ".join(wrong)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported, _ in _imports(path):
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_no_module_imports_in_a_circle():
    """Lazy imports count: a circle hidden inside a function is still a circle."""
    graph = _graph()
    assert "lab93zmq.frontend.cli" in graph and graph["lab93zmq.frontend.cli"]
    # The package root may re-export anything (the public API); it is nobody's dependency.
    root = "lab93zmq"
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if target == root:
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, circles


def test_every_folder_of_the_package_is_a_package_that_installs():
    """``pip install .`` takes what setuptools finds: a folder without __init__.py
    would be left out of a real install (an editable one hides that)."""
    from setuptools import find_packages

    found = set(find_packages(str(PACKAGE.parent), include=["lab93zmq", "lab93zmq.*"]))
    folders = {
        _module_name(path / "__init__.py") if (path / "__init__.py").exists() else str(path)
        for path in [PACKAGE, *PACKAGE.rglob("*")]
        if path.is_dir() and path.name != "__pycache__" and any(path.glob("*.py"))
    }
    assert folders == found
    assert (PACKAGE / "py.typed").exists()


LAYERS = {"core": 0, "io": 1, "api": 2, "aio": 2, "frontend": 3}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_each_layer_imports_only_the_layers_below_it():
    """core < io < api (and aio) < frontend: docs/ARCHITECTURE.rst draws it."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        mine = _layer(name)
        if mine is None:
            continue  # the package root and __main__ may name anything
        for imported, line in _imports(path):
            theirs = _layer(imported) if imported.startswith("lab93zmq.") else None
            if theirs is not None and theirs > mine:
                wrong.append(f"{name}:{line} imports {imported}")
    assert not wrong, wrong


# The public contract has the same class twice on purpose: the blocking face and
# the asyncio one (docs/API.rst). Every other class name is the package's only one.
SAME_NAME_BY_CONTRACT = {
    "Node": {"lab93zmq.api.node", "lab93zmq.aio"},
    "Server": {"lab93zmq.api.node", "lab93zmq.aio"},
}


def _classes(tree: ast.AST) -> list[tuple[str, int]]:
    """Every class defined in ``tree``, at any depth, but a peewee model's inner
    ``class Meta`` (its options, not a thing of its own)."""
    found = []
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.ClassDef):
                continue
            if child.name == "Meta" and isinstance(node, ast.ClassDef):
                continue
            found.append((child.name, child.lineno))
    return found


def _shared_class_names(modules: dict[str, ast.AST]) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for module, tree in modules.items():
        for name, line in _classes(tree):
            where.setdefault(name, []).append(f"{module}:{line}")
    return {name: places for name, places in where.items() if len(places) > 1}


def test_no_two_classes_share_a_name():
    """Names say what things are: two classes called the same are two things one name
    hides (grep finds both, an import picks one)."""
    modules = {_module_name(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    shared = _shared_class_names(modules)
    for name, modules_of_it in SAME_NAME_BY_CONTRACT.items():
        assert {place.split(":")[0] for place in shared.pop(name, [])} == modules_of_it, name
    assert not shared, shared


def test_the_class_name_check_finds_a_shared_name():
    """The walk sees nested classes and skips only a model's inner Meta."""
    one = ast.parse("class Change: pass\nclass Model:\n    class Meta: pass\n")
    two = ast.parse("def f():\n    class Change: pass\n    class Meta: pass\n")
    assert _shared_class_names({"a": one, "b": two}) == {"Change": ["a:1", "b:2"]}
