"""Limits on the shape of the package's and the tools' code, read with ``ast`` (nothing is imported).

- A function or method spans at most 50 lines: from its ``def`` line (decorators not counted) to
  its last line, docstring, comments and blank lines included.
- A class spans at most 100 lines, counted the same way from its ``class`` line, whatever it is
  (a dataclass too).
- No import cycle among the modules of ``mmdet_opt``, through the imports at module level (under
  ``if`` and ``try`` there too); an import inside a function runs only when it is called, and is
  how a module may reach one that imports it. A module is not taken to import its parent packages.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
MAX_FUNCTION_LINES = 50
MAX_CLASS_LINES = 100


def checked_files() -> list[Path]:
    return sorted((SRC / "mmdet_opt").rglob("*.py")) + sorted((REPO / "tools").glob("*.py"))


def spans(kinds: tuple) -> list[tuple[str, int]]:
    """Each definition of these node kinds as ("path:line name", its length in lines)."""
    found = []
    for path in checked_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, kinds):
                where = f"{path.relative_to(REPO)}:{node.lineno} {node.name}"
                found.append((where, node.end_lineno - node.lineno + 1))
    return found


def test_the_checks_read_the_package_and_the_tools():
    names = {path.relative_to(REPO).as_posix() for path in checked_files()}
    assert {"src/mmdet_opt/suite/plugin.py", "tools/pip_install.py"} <= names


def test_no_function_is_longer_than_50_lines():
    long = [f"{where}: {lines} lines" for where, lines in spans((ast.FunctionDef, ast.AsyncFunctionDef))
            if lines > MAX_FUNCTION_LINES]
    assert not long, "\n".join(long)


def test_no_class_is_longer_than_100_lines():
    long = [f"{where}: {lines} lines" for where, lines in spans((ast.ClassDef,)) if lines > MAX_CLASS_LINES]
    assert not long, "\n".join(long)


def module_names() -> dict[str, Path]:
    """Each module of mmdet_opt by its dotted name (a package by its own name, for its __init__.py)."""
    modules = {}
    for path in sorted((SRC / "mmdet_opt").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def module_level_imports(tree: ast.Module) -> list:
    """The import statements that run when the module is imported: not those inside a def or class."""
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pending += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
            pending += [stmt for handler in getattr(node, "handlers", []) for stmt in handler.body]
    return found


def imported_names(node, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement reaches: ``from .x import y`` gives ``pkg.x.y`` (a
    module, or a name in ``pkg.x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    return [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set]:
    modules = module_names()

    def owner(name: str) -> str | None:  # the module a dotted name is, or lies in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets = {owner(name) for node in module_level_imports(ast.parse(path.read_text(), str(path)))
                   for name in imported_names(node, module, is_package)}
        graph[module] = targets - {None, module}
    return graph


def cycles(graph: dict[str, set]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
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
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_sees_the_imports():
    graph = import_graph()
    assert "mmdet_opt.suite.runs" in graph["mmdet_opt.suite.report"]  # from .runs import ...
    assert "mmdet_opt.machine" in graph["mmdet_opt.suite.report"]  # from ..machine import ...
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_modules():
    found = cycles(import_graph())
    assert not found, "\n".join(" -> ".join(component) for component in found)
