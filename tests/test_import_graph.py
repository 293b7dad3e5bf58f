"""rt's modules form layers: no import cycles in ``runtime/`` and ``convert/``, every module
imports on its own, and each package imports only the packages below it (docs/architecture.md).

The graph is read with :mod:`ast` from every ``import`` statement, including those inside
functions (they run too) and under ``if TYPE_CHECKING:`` (a cycle there is still two modules
that each need the other), so a cycle cannot hide behind a lazy import. Literal targets of
``importlib.import_module("...")`` and the tables of :func:`runtime.lazy.lazy_exports` count as
imports too: a dependency loaded by name is still a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "convert")


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of rt's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of ``known`` that the import statements of ``name`` refer to. ``from a import
    b`` refers to ``a.b`` when that is a module (``a``'s ``__init__`` runs, but it is the parent
    package, not a dependency), else to ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    yield from loaded_by_name(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in known else base


def loaded_by_name(tree: ast.Module) -> Iterator[str]:
    """Modules imported by name: ``import_module("a.b")`` with a literal, and the values of the
    dict given to ``lazy_exports`` (inline, or a module-level name bound to a dict literal)."""
    tables = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
              and isinstance(node.value, ast.Dict) for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if called == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            yield node.args[0].value
        elif called == "lazy_exports":
            for arg in node.args:
                table = tables.get(arg.id) if isinstance(arg, ast.Name) else arg
                if isinstance(table, ast.Dict):
                    yield from (v.value for v in table.values
                                if isinstance(v, ast.Constant) and isinstance(v.value, str))


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {m for m in imported_names(name, path, known) if m in known and m != name}
            for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "runtime.llm.llama_engine" in graph["runtime.llm.model"]  # imported inside a method
    assert "runtime.llm.types" in graph["runtime.serve.host"]  # under TYPE_CHECKING
    assert "convert.arch.llama" not in graph["convert.arch"]  # plugins load by name, lazily


def test_runtime_and_convert_have_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (break them with a module both can import): " + "; ".join(
        " <-> ".join(component) for component in found)


@pytest.mark.slow  # an interpreter per module
def test_every_module_imports_on_its_own() -> None:
    """Each module imported first thing in a fresh interpreter, so no import order hides a cycle."""
    names = sorted(modules())
    script = (
        "import importlib, subprocess, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    done = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
        "    if done.returncode:\n"
        "        failed.append(name + ': ' + (done.stderr.strip().splitlines() or ['?'])[-1])\n"
        "print('\\n'.join(failed))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout


# --- package layers ----------------------------------------------------------------------------
# Low to high (docs/architecture.md, "The layers"): each package may import itself and the packages
# listed for it. ``core`` is runtime/*.py; ``api`` is runtime/__init__.py, the one-import public
# API over the library; ``convert`` is the converter, which only ``rt convert`` uses.
_CORE = {"core"}
_PROCESS = _CORE | {"process"}
_MODELS = _PROCESS | {"models"}
_RAG = _MODELS | {"llm", "index", "rag"}
LAYERS: dict[str, set[str]] = {
    "core": _CORE,
    "process": _PROCESS,
    "models": _MODELS,
    "llm": _MODELS | {"llm"},
    "index": _MODELS | {"index"},
    "rag": _RAG,
    "serve": _RAG | {"serve"},
    "cli": _RAG | {"serve", "cli", "convert", "api"},
    "convert": _MODELS | {"convert"},
    "api": _RAG,
}
# Only this module imports ``convert`` from outside it.
CONVERT_USERS = {"runtime.cli.convert"}

# Edges (importer, imported) that break the rules today because the moves of issue 22 by other
# branches are not merged yet. THIS SET MUST BE EMPTY: whoever merges a move removes its edges
# here (test_known_leaks_are_still_leaks says which are gone); never add one to hide a new edge.
KNOWN_LEAKS: set[tuple[str, str]] = set()


def package_of(name: str) -> str:
    """The layer a module belongs to (see :data:`LAYERS`)."""
    parts = name.split(".")
    if parts[0] == "convert":
        return "convert"
    if name == "runtime":
        return "api"
    if len(parts) == 2 and not (ROOT / "runtime" / parts[1]).is_dir():
        return "core"
    return parts[1]


def back_arrows(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The edges of ``graph`` that import a package the importer's layer may not import, and
    every import of ``convert`` from outside it but :data:`CONVERT_USERS`."""
    found = set()
    for importer, imported in graph.items():
        layer = package_of(importer)
        for target in imported:
            allowed = package_of(target) in LAYERS[layer]
            if package_of(target) == "convert" and layer != "convert" and importer not in CONVERT_USERS:
                allowed = False
            if not allowed:
                found.add((importer, target))
    return found


def test_every_module_has_a_layer() -> None:
    assert {package_of(name) for name in modules()} <= set(LAYERS)


def test_the_layer_check_finds_a_back_arrow() -> None:
    """It can fail: the index importing the converter again, the core importing rag, the model
    importing the index, a process module importing the model."""
    graph = {name: set(targets) for name, targets in import_graph().items()}
    new = {("runtime.index.rerank", "convert.install"), ("runtime.config", "runtime.rag.rag"),
           ("runtime.llm.model", "runtime.index.store"), ("runtime.process.launch", "runtime.llm.model"),
           ("runtime.serve.app", "convert.pipeline"), ("runtime.models.registry", "runtime.llm.model")}
    for importer, target in new:
        graph[importer].add(target)
    assert back_arrows(graph) - KNOWN_LEAKS == new


def test_the_graph_follows_imports_by_name() -> None:
    graph = import_graph()
    assert "runtime.rag.rag" in graph["runtime"]  # runtime/__init__.py's lazy_exports table
    assert "runtime.rag.answer" in graph["runtime.rag"]
    tree = ast.parse("import importlib\nimportlib.import_module('runtime.llm.model')\n")
    assert list(loaded_by_name(tree)) == ["runtime.llm.model"]


def test_packages_import_only_the_layers_below_them() -> None:
    found = back_arrows(import_graph()) - KNOWN_LEAKS
    assert not found, "imports against the package layers of docs/architecture.md:\n" + "\n".join(
        f"  {importer} ({package_of(importer)}) -> {target} ({package_of(target)})"
        for importer, target in sorted(found))


def test_known_leaks_are_still_leaks() -> None:
    """A leak fixed by a merged move leaves the list, so the list can only shrink to empty."""
    gone = KNOWN_LEAKS - back_arrows(import_graph())
    assert not gone, f"no longer leaks, remove them from KNOWN_LEAKS: {sorted(gone)}"


def test_packages_export_lazily_through_one_helper() -> None:
    """No ``__init__.py`` hand-rolls its own ``__getattr__`` loader: runtime.lazy.lazy_exports."""
    own = [name for name, path in modules().items() if path.name == "__init__.py"
           and any(isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
                   for node in ast.parse(path.read_text(encoding="utf-8")).body)]
    assert own == []


def test_each_packages_options_live_in_that_package() -> None:
    """An option dataclass of runtime/config.py that one package alone uses (the CLI and the
    server, which pass every option on, aside) belongs in that package's config.py."""
    config = ROOT / "runtime" / "config.py"
    classes = {node.name for node in ast.parse(config.read_text(encoding="utf-8")).body
               if isinstance(node, ast.ClassDef) and node.name.endswith("Options")}
    users: dict[str, set[str]] = {name: set() for name in classes}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "runtime.config":
                for alias in node.names:
                    if alias.name in users:
                        users[alias.name].add(package_of(name))
    single = {name: used - {"cli", "serve", "api"} for name, used in users.items()}
    misplaced = sorted(name for name, used in single.items() if len(used) == 1 and used != {"core"})
    assert misplaced == [], {name: single[name] for name in misplaced}
