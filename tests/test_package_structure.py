"""The package's shape: its parts import one another in one direction, and the local source
simulator stays out of the platform (only the CLI, the stand-ins of outside services, the bench
and the tests use it)."""

import ast
import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest

import tenantpulse

PACKAGE_DIR = Path(tenantpulse.__file__).parent
SUBPACKAGES = sorted(m.name for m in pkgutil.iter_modules(tenantpulse.__path__) if m.ispkg)
# Inside the package, only these parts may import the simulator.
SIMULATOR_USERS = {"tenantpulse.cli", "tenantpulse.simulator", "tenantpulse.standins"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _part(module: str) -> str:
    """The part of the package a module belongs to: `tenantpulse.<subpackage or module>`."""
    return ".".join(module.split(".")[:2])


def _imported_modules(path: Path, module: str) -> set[str]:
    """Every tenantpulse module `path` imports, at the top or inside a function."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            imported.add(target)
            # `from tenantpulse import simulator` imports the subpackage itself
            imported.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in imported if name.startswith("tenantpulse.")}


def _imports_by_part() -> dict[str, dict[str, set[str]]]:
    """part -> {module in that part: the other parts it imports}."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = _module_name(path)
        part = _part(module)
        others = {_part(name) for name in _imported_modules(path, module)} - {part}
        graph[part][module] = others
    return graph


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_every_subpackage_imports(subpackage):
    importlib.import_module(f"tenantpulse.{subpackage}")


def test_the_simulator_and_sources_are_separate_subpackages():
    assert {"simulator", "sources", "tenants"} <= set(SUBPACKAGES)
    simulation = sorted(p.name for p in (PACKAGE_DIR / "sources").glob("sim*.py"))
    assert simulation == []


def test_sources_do_not_import_tenants():
    graph = _imports_by_part()
    sources_importing_tenants = sorted(
        module
        for module, parts in graph["tenantpulse.sources"].items()
        if "tenantpulse.tenants" in parts
    )
    assert sources_importing_tenants == []
    assert any("tenantpulse.sources" in parts for parts in graph["tenantpulse.tenants"].values())


def test_no_part_of_the_package_imports_itself_through_others():
    depends_on = {
        part: set().union(*modules.values()) & set(_imports_by_part())
        for part, modules in _imports_by_part().items()
    }
    cycles = []
    for start in sorted(depends_on):
        path_to = {start: [start]}
        pending = [start]
        while pending:
            current = pending.pop()
            for following in sorted(depends_on[current]):
                if following == start:
                    cycles.append(" -> ".join([*path_to[current], start]))
                elif following not in path_to:
                    path_to[following] = [*path_to[current], following]
                    pending.append(following)
    assert cycles == []


def test_only_the_cli_imports_the_simulator():
    importers = sorted(
        module
        for part, modules in _imports_by_part().items()
        if part not in SIMULATOR_USERS
        for module, parts in modules.items()
        if "tenantpulse.simulator" in parts
    )
    assert importers == []
