"""The core's shape: ``spiceflow_core`` has no import cycle, and its code names no venue.

Import cycles are found on the graph of module-level imports (what runs when a module
is imported): imports inside functions run later, and imports under ``if
TYPE_CHECKING:`` never run, so neither counts. Venue names may appear in comments and
docstrings (as examples) and in ``testkit/`` (its toy venue and fakes), nowhere else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import spiceflow_core

CORE = Path(spiceflow_core.__file__).parent
VENUE_NAMES = ("binance", "deribit")


# -- the import graph ------------------------------------------------------------------
def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for the package at ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when a module body runs: nested blocks included
    (a class body runs too), function bodies and ``if TYPE_CHECKING:`` blocks not."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _run_at_import(node.body)
            yield from _run_at_import(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                yield from _run_at_import(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _run_at_import(node.body)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at module level. ``from pkg import
    name`` depends on ``pkg.name`` when that is a module (or an extension module: no
    edge), else on ``pkg``."""
    files = module_files(root)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _run_at_import(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target and target not in files:
                        target = target.rpartition(".")[0]
                    if target:
                        deps.add(target)
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            if source not in files:
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in files:
                    deps.add(submodule)
                elif not any(files[source].parent.glob(f"{alias.name}.*[!y]")):  # .pyx, .so, .pyi: a leaf
                    deps.add(source)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each
    sorted: every module in one imports every other one, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in component)


def test_the_core_has_no_import_cycle():
    graph = import_graph(CORE)
    assert "spiceflow_core.runtime.venue_runtime" in graph  # the graph covers the package
    found = cycles(graph)
    assert not found, "import cycles (move a type import under TYPE_CHECKING, or the code to its owner): " + (
        " | ".join(_describe(c, graph) for c in found)
    )


def _write_package(root: Path, modules: dict[str, str]) -> Path:
    package = root / "pkg"
    package.mkdir()
    for name, source in modules.items():
        (package / f"{name}.py").write_text(source)
    return package


def test_the_cycle_check_finds_a_cycle_and_ignores_what_does_not_run_at_import(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "__init__": "",
            "a": "from pkg import b\n",
            "b": "from . import c\n",
            "c": "import pkg.a\n",  # a -> b -> c -> a
            "d": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\n",
            "e": "from pkg.d import x\n\ndef later():\n    from pkg import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.c"} and graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == set() and graph["pkg.e"] == {"pkg.d"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


# -- venue names -----------------------------------------------------------------------
def _documentation(tree: ast.Module) -> set[int]:
    """ids of the string constants that document: docstrings and other bare string
    statements."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def _code_words(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant and name the code uses."""
    documentation = _documentation(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.alias):
            yield node.lineno, node.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module


def venue_mentions(root: Path, skip: tuple[str, ...] = ("testkit",)) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in skip:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _code_words(tree):
            if any(venue in text.lower() for venue in VENUE_NAMES):
                found.append(f"{path.relative_to(root.parent)}:{line}: {text!r}")
    return found


def test_the_core_names_no_venue_outside_comments_and_docstrings():
    found = venue_mentions(CORE)
    assert not found, "venue names in the core's code:\n" + "\n".join(found)


def test_the_venue_check_sees_code_and_skips_documentation(tmp_path):
    package = _write_package(
        tmp_path,
        {
            "__init__": '"""Docstring: binance."""\n# a comment: Deribit\n',
            "code": 'URL = "wss://stream.binance.com"\n\ndef f(deribit_key):\n    """deribit."""\n',
        },
    )
    (package / "testkit").mkdir()
    (package / "testkit" / "toy.py").write_text('NAME = "binance"\n')
    found = venue_mentions(package)
    assert [entry.split(": ", 1)[0] for entry in found] == ["pkg/code.py:1", "pkg/code.py:3"]
