"""The code's shape, checked from the source (ast, nothing imported): short functions, packages
that depend on each other in one direction only, and Optuna used through its public API only.

Imports inside functions count as dependencies too: a lazy import hides a cycle from Python,
not from the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autocompress"
MAX_FUNCTION_LINES = 60
MAX_FILE_LINES = 400  # a file past this holds more than one concept: split it
MAX_METHODS = 9  # the classes where policies used to pile up stay small: a new policy is a new part
SMALL_CLASSES = {"search/searcher.py": "StudySearcher", "spaces/space.py": "SearchSpace"}
# private attributes of Optuna's Study, Trial and storages, flagged even where a class of ours
# happens to use the same name for its own attribute
OPTUNA_PRIVATE = {"_storage", "_trial_id", "_study_id", "_study", "_cached_frozen_trial", "_get_trials",
                  "_log_completed_trial", "_thread_local", "_directions", "_backend"}


def _sources() -> dict[str, ast.Module]:
    """{module name: parsed tree} of every file of the package."""
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(), filename=str(path))
    return trees


def _unit(module: str) -> str:
    """The unit a module belongs to: its subpackage (autocompress.search), or itself when it is a
    top-level module (autocompress.task); the package root is its own unit."""
    return ".".join(module.split(".")[:2])


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every autocompress module ``module`` imports, at any depth (functions included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "autocompress")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against this module's package
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "autocompress":
                continue
            for alias in node.names:  # ``from autocompress import search`` imports a submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def unit_graph() -> dict[str, set[str]]:
    """{unit: units it imports}, self-imports left out."""
    graph: dict[str, set[str]] = {}
    for module, tree in _sources().items():
        is_package = (PACKAGE.parent.joinpath(*module.split(".")) / "__init__.py").is_file()
        unit = _unit(module)
        targets = {_unit(t) for t in _imports(tree, module, is_package)} - {unit}
        graph.setdefault(unit, set()).update(targets)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
    return sorted(found)


def cycle_edges(graph: dict[str, set[str]]) -> list[str]:
    """The imports between the units of each cycle, as 'module -> imported module'."""
    edges = []
    for component in cycles(graph):
        members = set(component)
        for module, tree in _sources().items():
            unit = _unit(module)
            if unit not in members:
                continue
            is_package = (PACKAGE.parent.joinpath(*module.split(".")) / "__init__.py").is_file()
            for target in sorted(_imports(tree, module, is_package)):
                if _unit(target) in members and _unit(target) != unit:
                    edges.append(f"{module} -> {target}")
    return edges


def long_functions(trees: dict[str, ast.Module]) -> list[str]:
    """'module:function (N lines)' for every function longer than MAX_FUNCTION_LINES."""
    found = []
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{module}:{node.name} ({lines} lines)")
    return sorted(found)


def _own_private_names(trees) -> set[str]:
    """Private names autocompress defines itself (functions, classes, attributes, variables)."""
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {n for n in names if n.startswith("_")}


def private_optuna_uses(trees: dict[str, ast.Module]) -> list[str]:
    """Private Optuna modules imported, and private attributes read on objects that are not ours
    (``study._storage``, ``trial._trial_id``), in every module that imports optuna."""
    ours = _own_private_names(trees)
    found = []
    for module, tree in trees.items():
        uses_optuna = False
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name.split(".")[0] == "optuna":
                    uses_optuna = True
                    if any(p.startswith("_") for p in name.split(".")):
                        found.append(f"{module}:{node.lineno} imports {name}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optuna":
                found.extend(f"{module}:{node.lineno} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_"))
        if not uses_optuna:
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and (node.attr not in ours or node.attr in OPTUNA_PRIVATE)
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{module}:{node.lineno} reads .{node.attr}")
    return sorted(found)


def test_no_function_is_longer_than_60_lines():
    found = long_functions(_sources())
    assert not found, "split these functions:\n" + "\n".join(found)


def long_files(package: Path = PACKAGE) -> list[str]:
    """'path (N lines)' for every source file of ``package`` longer than MAX_FILE_LINES."""
    found = []
    for path in sorted(package.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            found.append(f"{path.relative_to(package.parent)} ({lines} lines)")
    return found


def test_no_file_is_longer_than_400_lines(tmp_path):
    found = long_files()
    assert not found, "split these files, one concept each:\n" + "\n".join(found)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * (MAX_FILE_LINES + 1))
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n" * MAX_FILE_LINES)
    assert long_files(tmp_path / "pkg") == [f"pkg/big.py ({MAX_FILE_LINES + 1} lines)"]  # the check can fail


def methods_of(source: str, name: str) -> list[str]:
    """The methods class ``name`` defines in ``source`` (its own, not inherited)."""
    tree = ast.parse(source)
    found = next(node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == name)
    return [n.name for n in found.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_the_searcher_and_the_space_stay_under_ten_methods():
    for path, name in SMALL_CLASSES.items():
        methods = methods_of((PACKAGE / path).read_text(), name)
        assert len(methods) <= MAX_METHODS, f"{name} has {len(methods)} methods: move a policy out ({methods})"
    many = "class Big:\n" + "".join(f"    def m{i}(self): pass\n" for i in range(MAX_METHODS + 1))
    assert len(methods_of(many, "Big")) > MAX_METHODS  # the check can fail


def test_no_import_cycle_between_packages_and_top_level_modules():
    graph = unit_graph()
    assert {"autocompress.search", "autocompress.spaces", "autocompress.compressors", "autocompress.evaluators",
            "autocompress.reports", "autocompress.tasks", "autocompress.task"} <= set(graph)
    assert not cycles(graph), "imports between the units of a cycle:\n" + "\n".join(cycle_edges(graph))


def test_optuna_is_used_through_its_public_api_only():
    found = private_optuna_uses(_sources())
    assert not found, "use Optuna's public API instead of:\n" + "\n".join(found)


def test_the_checks_can_fail():
    """Each checker finds what it looks for, on made-up sources."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    long = {"m": ast.parse("def f():\n" + "    x = 1\n" * 60)}
    assert long_functions(long) == ["m:f (61 lines)"]
    assert long_functions({"m": ast.parse("def f():\n" + "    x = 1\n" * 59)}) == []
    sneaky = ast.parse("import optuna\nfrom optuna.storages._rdb import models\n"
                       "def f(study, trial):\n    return study._storage, trial._trial_id, self._mine\n"
                       "class A:\n    def __init__(self):\n        self._mine = 1\n        self._storage = 2\n")
    assert private_optuna_uses({"m": sneaky}) == ["m:2 imports optuna.storages._rdb", "m:4 reads ._storage",
                                                  "m:4 reads ._trial_id"]
    relative = ast.parse("from ..task import UsageError\nfrom . import rundir\n")
    assert _imports(relative, "autocompress.search.best", False) == {"autocompress.task",
                                                                       "autocompress.search.rundir"}
