"""The house's layout rules, checked from the source: no import circle inside the package, and no module
over MAX_LINES lines unless its docstring says why it is one module (it names the limit: "400 lines")."""

import ast
from pathlib import Path

import pytest

from support.tiny_project import REPO

MAX_LINES = 400
SOURCE_ROOT = REPO / "src"
CHECKED_DIRS = [REPO / "src" / "globallocal", REPO / "pipeline", REPO / "benchmarks"]


def module_files(source_root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``source_root``."""
    modules = {}
    for path in (source_root / package).rglob("*.py"):
        parts = list(path.relative_to(source_root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports anywhere (module level and inside functions alike)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # ``from pkg import mod`` imports the module mod; ``from mod import name`` imports mod.
                submodule = f"{node.module}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif node.module in modules:
                    found.add(node.module)
    return found


def import_circles(source_root: Path, package: str) -> list[list[str]]:
    """Every group of modules that import each other, directly or through others (Tarjan's strongly
    connected components of size > 1), each sorted."""
    modules = module_files(source_root, package)
    graph = {name: imported_modules(path, modules) - {name} for name, path in modules.items()}
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(name: str) -> None:
        index[name] = lowlink[name] = len(index)
        stack.append(name)
        for other in graph[name]:
            if other not in index:
                visit(other)
                lowlink[name] = min(lowlink[name], lowlink[other])
            elif other in stack:
                lowlink[name] = min(lowlink[name], index[other])
        if lowlink[name] == index[name]:
            component = []
            while not component or component[-1] != name:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(circles)


def test_import_circles_finds_a_circle_through_a_third_module(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def late():\n    from pkg.c import thing\n")
    (package / "c.py").write_text("import pkg.a\nthing = 1\n")
    (package / "d.py").write_text("from pkg import a\n")  # imports into the circle, is not part of it
    assert import_circles(tmp_path, "pkg") == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_the_package_has_no_import_circle():
    assert import_circles(SOURCE_ROOT, "globallocal") == []


def test_config_modules_import_each_other_one_way():
    """The file reader and the sections never reach back into the tree that gathers them (nor the face)."""
    modules = module_files(SOURCE_ROOT, "globallocal")
    assert {"globallocal.config.reading", "globallocal.config.sections"} <= imported_modules(
        modules["globallocal.config.params"], modules)
    for name in ("globallocal.config.reading", "globallocal.config.sections"):
        assert not {"globallocal.config", "globallocal.config.params"} & imported_modules(modules[name], modules)


@pytest.mark.parametrize("folder", CHECKED_DIRS, ids=lambda folder: folder.name)
def test_no_module_over_the_line_limit_without_a_reason(folder):
    too_long = []
    for path in sorted(folder.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and f"{MAX_LINES} lines" not in docstring:
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert too_long == []
