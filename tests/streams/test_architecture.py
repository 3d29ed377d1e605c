"""The rooms of streams/ and the direction of their imports (README "How it works").

    commands, api -> worker -> engines -> processing -> analysis, kafka, operations
        -> settings, security, connection_errors

Read from the source with ``ast``, nothing imported. "Imports" are every ``import``
statement of a module, also those inside functions and under ``TYPE_CHECKING``: a
deferred import still makes the lower room depend on the upper one. Cycles are looked
for twice: among the imports Python runs when a module is imported (a cycle there can
break start-up) and among all of them (a cycle there is a design one).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[2] / "streams"

# Rooms by level: a module may import its own room, rooms of its level, and lower
# levels. The top-level modules other than worker.py are configuration (level 0).
LEVELS = {
    "config": 0,
    "analysis": 1,
    "kafka": 1,
    "operations": 1,
    "processing": 2,
    "engines": 3,
    "worker": 4,
    "commands": 5,
    "api": 5,
    "__main__": 6,
}
ENTRY_ROOMS = {"commands", "api", "__main__"}


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(STREAMS.rglob("*.py")):
        parts = list(path.relative_to(STREAMS.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "config"  # the streams package itself
    if len(parts) > 2:
        return parts[1]
    return parts[1] if parts[1] in LEVELS else "config"


def _statements(body: list[ast.stmt], *, executed_only: bool) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            if not executed_only:
                yield from _statements(node.body, executed_only=executed_only)
            yield from _statements(node.orelse, executed_only=executed_only)
            continue
        if executed_only:
            # What runs at import: the module body and its blocks, not function bodies.
            if isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody"):
                    yield from _statements(getattr(node, block, []), executed_only=True)
                for handler in getattr(node, "handlers", []):
                    yield from _statements(handler.body, executed_only=True)
        else:
            for child in ast.walk(node):
                if child is not node and isinstance(child, ast.Import | ast.ImportFrom):
                    yield child


@cache
def imports(module: str, *, executed_only: bool) -> frozenset[str]:
    """The streams modules ``module`` imports."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _statements(tree.body, executed_only=executed_only):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        if parts[0] != "streams":
            continue
        for end in range(len(parts), 0, -1):  # the longest prefix that is a module
            candidate = ".".join(parts[:end])
            if candidate in modules():
                if candidate != module:
                    found.add(candidate)
                break
    return frozenset(found)


def cycles(*, executed_only: bool) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    graph = {m: imports(m, executed_only=executed_only) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

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
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def edges() -> Iterator[tuple[str, str]]:
    for module in sorted(modules()):
        for target in sorted(imports(module, executed_only=False)):
            yield module, target


def test_the_rooms_are_known() -> None:
    assert {room(m) for m in modules()} <= set(LEVELS), "a new room needs a level here"
    assert len(modules()) > 30  # the walk found the package


@pytest.mark.parametrize("executed_only", [True, False], ids=["at-import", "all-imports"])
def test_no_import_cycles(executed_only: bool) -> None:
    assert cycles(executed_only=executed_only) == []


def test_kafka_and_analysis_do_not_import_processing() -> None:
    wrong = [
        (m, t)
        for m, t in edges()
        if room(m) in {"kafka", "analysis"} and room(t) in {"processing", "engines", "worker"}
    ]
    assert wrong == []


def test_only_entry_points_import_commands_api_and_the_worker() -> None:
    wrong = [
        (m, t)
        for m, t in edges()
        if room(t) in {"commands", "api", "worker"} and room(m) not in ENTRY_ROOMS | {room(t)}
    ]
    assert wrong == []


def test_imports_point_down_the_rooms() -> None:
    upward = [
        (m, t) for m, t in edges() if room(m) != room(t) and LEVELS[room(t)] > LEVELS[room(m)]
    ]
    assert upward == []
