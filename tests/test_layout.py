"""The package's layering (docs/architecture.md), checked on the source: which modules may import
which, and no import circles. Lazy imports inside functions count too: they still tie the modules
together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rawback"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """rawback module -> the rawback modules it imports, anywhere in its source."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rawback"):
                for alias in node.names:  # `from rawback import metrics` names a module
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("rawback.")}
        graph[name] = {m for m in found if m in modules and m not in (name, "rawback")}
    return graph


def test_there_are_no_import_circles() -> None:
    graph = imports()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            circle = [*visiting[visiting.index(name) :], name]
            pytest.fail("import circle: " + " -> ".join(circle))
        visiting.append(name)
        for other in sorted(graph[name]):
            visit(other)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "rawback.io",
            ("rawback.model", "rawback.train", "rawback.evaluate", "rawback.cli", "rawback.camera"),
        ),
        ("rawback.isp", ("rawback.model", "rawback.train", "rawback.evaluate", "rawback.cli", "rawback.io")),
        (
            "rawback.model",
            ("rawback.camera", "rawback.io", "rawback.weights", "rawback.features", "rawback.train"),
        ),
        ("rawback.train", ("rawback.evaluate", "rawback.cli")),
        ("rawback.evaluate", ("rawback.train", "rawback.cli")),
    ],
)
def test_lower_layers_do_not_import_higher_ones(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{name} imports {other}"
        for name, others in imports().items()
        if name == package or name.startswith(package + ".")
        for other in others
        if any(other == f or other.startswith(f + ".") for f in forbidden)
    ]
    assert not bad


def test_only_io_raw_calls_rawpy() -> None:
    users = [
        module_name(p)
        for p in PACKAGE.rglob("*.py")
        if any(
            isinstance(n, ast.Import | ast.ImportFrom)
            and any(a.name == "rawpy" for a in n.names) | (getattr(n, "module", None) == "rawpy")
            for n in ast.walk(ast.parse(p.read_text()))
        )
    ]
    assert users == ["rawback.io.raw"]


def test_no_module_is_much_over_500_lines() -> None:
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 520}
    assert not long
