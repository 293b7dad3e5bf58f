"""pyproject.toml declares what runtime/ and convert/ import, and nothing they don't.

Installs nothing: every import statement of rt's own code (lazy ones inside functions included)
is read with ``ast``, mapped to the distribution that provides it with
``importlib.metadata.packages_distributions()``, and looked up in pyproject's dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("runtime", "convert")
FIRST_PARTY = frozenset(SOURCES)


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``Jinja2`` == ``jinja2``, ``a_b`` == ``a-b``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unparsable requirement {requirement!r} in pyproject.toml"
    return _normalized(match.group(1))


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _runtime_requirements() -> list[str]:
    return list(_project()["dependencies"])


def _code_requirements() -> list[str]:
    """What rt's own code may import: the dependencies and every extra but the tests' own
    (``serve``'s packages are imported only by ``rt serve``)."""
    project = _project()
    extras = [req for name, reqs in project.get("optional-dependencies", {}).items() if name != "test"
              for req in reqs]
    return [*project["dependencies"], *extras]


def _declared_for_code() -> set[str]:
    return {_requirement_name(r) for r in _code_requirements()}


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _imports(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Top-level module names imported anywhere in ``tree`` (function bodies included), with lines.

    ``importlib.import_module("x")`` with a literal name counts as an import of ``x``.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value.split(".")[0], node.lineno


def _third_party_imports() -> dict[str, list[str]]:
    """Third-party module name -> where it is imported (``runtime/x.py:12``)."""
    found: dict[str, list[str]] = {}
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for module, line in _imports(tree):
            if module in sys.stdlib_module_names or module in FIRST_PARTY or module == "__future__":
                continue
            found.setdefault(module, []).append(f"{path.relative_to(ROOT).as_posix()}:{line}")
    return found


def _string_constants() -> set[str]:
    """Every string literal in rt's code: packages located without importing them (the embedded
    models, found with ``importlib.util.find_spec``) are named only as strings."""
    strings: set[str] = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    return strings


def _distributions() -> dict[str, set[str]]:
    """Import name -> normalized names of the installed distributions that provide it."""
    return {module: {_normalized(d) for d in dists}
            for module, dists in importlib.metadata.packages_distributions().items()}


def test_the_import_walk_sees_lazy_imports_and_import_module() -> None:
    tree = ast.parse("import a.b\nfrom c import d\nfrom . import e\n"
                     "def f():\n    import g\n    from h.i import j\n    importlib.import_module('k.l')\n")
    assert [name for name, _ in _imports(tree)] == ["a", "c", "g", "h", "k"]


def test_every_third_party_import_is_declared() -> None:
    providers = _distributions()
    declared = _declared_for_code()
    undeclared = []
    for module, places in sorted(_third_party_imports().items()):
        dists = providers.get(module)
        if not dists:
            undeclared.append(f"{module} (no installed distribution provides it), imported at {places[0]}")
        elif not dists & declared:
            undeclared.append(f"{module} (from {', '.join(sorted(dists))}) imported at {', '.join(places[:3])}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_every_dependency_of_rt_itself_is_used() -> None:
    modules_of: dict[str, set[str]] = {}
    for module, dists in _distributions().items():
        for dist in dists:
            modules_of.setdefault(dist, set()).add(module)
    used = set(_third_party_imports()) | _string_constants()
    unused = [req for req in _code_requirements()
              if not modules_of.get(_requirement_name(req), set()) & used]
    assert not unused, f"declared in pyproject.toml (dependencies or a non-test extra) but never imported: {unused}"


@pytest.mark.parametrize("requirement", _runtime_requirements())
def test_the_installed_version_is_one_that_is_declared(requirement: str) -> None:
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate():
        pytest.skip(f"{requirement} does not apply here")
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} is installed"
