"""The package's layering, read from the source: which stage may import which, and no cycles.

The pipeline runs datasets (and ``data.py``) → steering → methods → engine → backends → store →
metrics → report (the viewer, ``view``, beside it) → cli, with ``runner.py`` and ``toy.py``
orchestrating above them and shared modules (``errors``, ``results``, ``costs``, ``parsing``,
``formatting``) usable anywhere. The order is not strictly linear (methods use ``backends.base``
for ``Capability``, the engine uses the backends and the store), so the tests encode the rules
that hold and matter rather than one chain.

Imports are read with ``ast``; nothing is imported, so a rule fails on the line that breaks it.
The layering rules count every import, also those inside functions or under
``if TYPE_CHECKING:`` (a lazy import is still a dependency). The cycle check counts only imports
that run when a module is first imported: a lazy one cannot take part in an import cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "distalign"

# These run the pipeline from above: no stage of it may import them.
ORCHESTRATION = {"runner", "toy"}

# The top stages: the report and the viewer (beside each other), then the command line.
TOP = {"report", "view", "cli"}

# importer stage -> the stages it must never import (a stage is the first name below
# ``distalign``: ``distalign.datasets.user`` is in ``datasets``, ``distalign.data`` in ``data``).
FORBIDDEN: dict[str, set[str]] = {
    "data": {"steering", "methods", "engine", "backends", *TOP, *ORCHESTRATION},
    "datasets": {"steering", "methods", "engine", "backends", *TOP, *ORCHESTRATION},
    "steering": {"methods", "engine", *TOP, *ORCHESTRATION},
    "backends": {"engine", "methods", "steering", *TOP, *ORCHESTRATION},
    "metrics": {"backends", *TOP, *ORCHESTRATION},
    "report": {"cli", "view", *ORCHESTRATION},
    # the viewer reads results like the report (and reuses it); only the cli starts it
    "view": {"cli", *ORCHESTRATION},
    # the formatting shared by report, view and cli sits below them
    "formatting": {*TOP},
}

# Known breaks of FORBIDDEN, each (importing module, imported module), to be removed when fixed.
# A listed break that no longer occurs fails the test too, so this list can only shrink.
KNOWN_BREAKS: set[tuple[str, str]] = set()  # (importer, imported) allowed for now: none

# The response cache is a leaf: it knows requests only as JSON, nothing of the pipeline.
STORE_MAY_IMPORT = {"store", "errors"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "distalign.report.tables"
    target: str  # the imported module, e.g. "distalign.formatting"
    line: int
    at_import_time: bool  # False inside a function or an ``if TYPE_CHECKING:`` block

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    """``distalign.report.html`` -> ``report``; the package itself has the stage ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def read_imports(source: str, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """The ``distalign`` modules that ``source`` (the module ``module``) imports.

    ``from distalign.report import figures`` names the module ``distalign.report.figures`` when
    that module exists (``known``), else the package ``distalign.report``. Parent packages that
    Python imports implicitly are not counted: a package importing its own submodules is the
    normal layout, not a cycle.
    """
    found = []
    for node, at_import_time in _walk(ast.parse(source).body, True):
        for target in _targets(node, module, is_package, known):
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                found.append(Import(module, target, node.lineno, at_import_time))
    return found


def _walk(
    nodes: Iterable[ast.AST], at_import_time: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, at_import_time
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(ast.iter_child_nodes(node), False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(node.body, False)
            yield from _walk(node.orelse, at_import_time)
        else:
            yield from _walk(ast.iter_child_nodes(node), at_import_time)


def _is_type_checking(test: ast.expr) -> bool:
    name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
    return name == "TYPE_CHECKING"


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([node.module] if node.module else []))
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
    ]


@cache
def all_imports() -> tuple[Import, ...]:
    files = sorted((SRC / PACKAGE).rglob("*.py"))
    known = {module_name(f) for f in files}
    found = []
    for file in files:
        module = module_name(file)
        text = file.read_text(encoding="utf-8")
        found += read_imports(text, module, file.name == "__init__.py", known)
    return tuple(found)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def import_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.at_import_time and imp.target != imp.module:
            graph.setdefault(imp.module, set()).add(imp.target)
    return graph


# --- the scanner itself: it must see what the rules are about ---------------------------------


def test_scanner_sees_lazy_and_type_checking_imports() -> None:
    source = """
from typing import TYPE_CHECKING
import distalign.errors
from distalign.report import tables
from . import figures
if TYPE_CHECKING:
    from distalign.cli import app
def later():
    from distalign.cli._render import fmt
class Shown:
    from distalign.results import Status
"""
    known = {"distalign.report.tables", "distalign.report.figures", "distalign.cli._render"}
    found = read_imports(source, "distalign.report.html", False, known)
    seen = {(i.target, i.at_import_time) for i in found}
    assert seen == {
        ("distalign.errors", True),
        ("distalign.report.tables", True),
        ("distalign.report.figures", True),
        ("distalign.cli", False),
        ("distalign.cli._render", False),
        ("distalign.results", True),  # a class body runs at import time
    }


def test_scanner_reads_the_package() -> None:
    imports = all_imports()
    # a module-level and a function-level import known to exist, so an empty scan cannot pass
    assert any(i.module == "distalign.runner" and i.at_import_time for i in imports)
    assert any(not i.at_import_time for i in imports)


def test_find_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


# --- the rules ------------------------------------------------------------------------------


def test_report_never_imports_cli() -> None:
    """The report writes files and the CLI prints them; what both need is in ``formatting``."""
    wrong = [
        str(i) for i in all_imports() if stage(i.module) == "report" and stage(i.target) == "cli"
    ]
    assert not wrong, "report imports cli (top-level or inside a function):\n" + "\n".join(wrong)


@pytest.mark.parametrize("importer", sorted(FORBIDDEN))
def test_lower_stages_never_import_higher_ones(importer: str) -> None:
    forbidden = FORBIDDEN[importer]
    breaking = [
        i for i in all_imports() if stage(i.module) == importer and stage(i.target) in forbidden
    ]
    wrong = [str(i) for i in breaking if (i.module, i.target) not in KNOWN_BREAKS]
    assert not wrong, f"{importer} must not import {sorted(forbidden)}:\n" + "\n".join(wrong)
    known = {k for k in KNOWN_BREAKS if stage(k[0]) == importer}
    fixed = known - {(i.module, i.target) for i in breaking}
    assert not fixed, f"fixed, so remove from KNOWN_BREAKS: {sorted(fixed)}"


def test_store_imports_nothing_of_the_pipeline() -> None:
    wrong = [
        str(i)
        for i in all_imports()
        if stage(i.module) == "store" and stage(i.target) not in STORE_MAY_IMPORT
    ]
    assert not wrong, f"store may import only {sorted(STORE_MAY_IMPORT)}:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph(all_imports()))
    assert cycle is None, "import cycle (module-level imports): " + " -> ".join(cycle or [])
