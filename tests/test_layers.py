"""The shape of the code: layers with every import pointing down, and no cycle.

Read with plain ``ast`` (no new dependency), counting every import: module-level,
function-level and ``if TYPE_CHECKING:`` ones alike.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import bridge

PACKAGE = Path(bridge.__file__).parent

USE_CASES = {
    "bridge.pipeline",
    "bridge.exporting",
    "bridge.platform_rules",
    "bridge.scaffold",
    "bridge.rounds",
    "bridge.checking",
}
ABOVE_ADAPTERS = USE_CASES | {"bridge.registry", "bridge.api", "bridge.cli"}
# Where a bridge module may be imported inside a function: the registry (an adapter loads
# only when a mapping names it) and the CLI (a command loads only its use case), both for
# start-up time. The package's __init__ resolves its public names on first use instead.
LAZY_ALLOWED = {"bridge.registry", "bridge.cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> Iterator[tuple[str, bool]]:
    """(imported bridge module, imported inside a function or TYPE_CHECKING block)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, nested: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("bridge"):
                        yield alias.name, inner
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1])
                    base = f"{base}.{child.module}" if child.module else base
                if not base.startswith("bridge"):
                    continue
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    yield (full if full in known else base), inner
            yield from visit(child, inner)

    yield from visit(tree, False)


@functools.cache
def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for name, path in known.items():
        if name == "bridge":
            continue  # the lazy facade: it names everything, and nothing imports through it
        for target, _ in imports(path, name):
            if target in known and target != name and target != "bridge":
                edges[name].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def is_adapter(name: str) -> bool:
    return name.startswith(("bridge.sources.", "bridge.targets.")) and name not in {
        "bridge.sources.base",
        "bridge.targets.base",
    }


def test_there_is_no_import_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_adapters_never_import_a_use_case() -> None:
    bad = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        if is_adapter(name)
        for target in targets
        if target in ABOVE_ADAPTERS
    ]
    assert not bad


def test_the_bottom_layer_imports_no_adapter_runtime() -> None:
    """errors, records, configs, the base protocols and rules never reach an adapter's code;
    mapping.py reaches only the config models (the union)."""
    bottom = {
        "bridge.errors",
        "bridge.records",
        "bridge.configs",
        "bridge.sources.base",
        "bridge.targets.base",
        "bridge.plugins",
        "bridge.rules",
        "bridge.mapping",
        "bridge.http",
        "bridge.state",
    }
    edges = graph()
    bad = []
    for name in bottom:
        for target in edges[name]:
            if target in ABOVE_ADAPTERS or (
                is_adapter(target) and not target.endswith((".config", ".data"))
            ):
                bad.append(f"{name} imports {target}")
    assert not bad


def test_lazy_imports_of_bridge_modules_only_in_the_registry_and_the_cli() -> None:
    bad = [
        f"{name} imports {target} inside a function or a TYPE_CHECKING block"
        for name, path in modules().items()
        if name not in LAZY_ALLOWED and name != "bridge"
        for target, nested in imports(path, name)
        if nested
    ]
    assert not bad


def test_nothing_but_main_imports_the_cli() -> None:
    bad = [
        n for n, targets in graph().items() if "bridge.cli" in targets and n != "bridge.__main__"
    ]
    assert not bad


def test_the_public_surface_is_every_listed_name_and_nothing_missing() -> None:
    assert bridge.__all__ == sorted(bridge.__all__)
    for name in bridge.__all__:
        assert getattr(bridge, name) is not None, name
    expected = {
        # entry points
        "sync", "validate", "export", "pull_rules", "run_all", "load_mapping",
        # results and the mapping
        "SyncResult", "JobResult", "ExportResult", "PlatformRules", "MappingConfig",
        # the interfaces, their capabilities, and plug-ins
        "Source", "ExportSink", "Target", "ChecksAnnotations", "ExportsRecords", "PullsRules",
        "ReadsJudgeAnnotations", "WritesOwnedTabs", "FileMedium",
        "TargetPlugin", "SourcePlugin",
    }  # fmt: skip
    errors = importlib.import_module("bridge.errors")
    expected |= {
        n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
    }
    assert set(bridge.__all__) == expected
    with pytest.raises(AttributeError):
        _ = bridge.no_such_name  # type: ignore[attr-defined]


def test_each_public_name_comes_from_where_the_package_says() -> None:
    for name in bridge.__all__:
        value = getattr(bridge, name)
        origin = importlib.import_module(bridge._PUBLIC[name])
        assert getattr(origin, name) is value, name


def test_comments_cite_what_a_reader_can_open() -> None:
    """No citation of documents outside the repository (the research notes it was built
    from): the public documentation, or docs/ that the repository ships, instead."""
    bad = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        for needle in (r"(?<![\w_-])reference/", r"\bseed 0\d\d", r"\.\./shared"):
            if re.search(needle, text):
                bad.append(f"{name} cites {needle!r}")
    assert not bad
    assert (PACKAGE.parent / "docs" / "platform-notes.md").exists()


def test_no_assert_in_production_code() -> None:
    """``python -O`` drops asserts: a check that matters raises a BridgeError instead."""
    bad = [
        f"{name}:{node.lineno}"
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert not bad
