"""The rooms of the package import each other one way only, and no module imports itself
back through others: every import is counted, those inside functions and under
TYPE_CHECKING too (a cycle hidden in a function is still a cycle)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import modelci

PACKAGE = Path(modelci.__file__).parent

# Which rooms each room may import (ARCHITECTURE.md draws the same arrows).
ALLOWED = {
    "core": set(),
    "cage": {"core"},
    "schema": {"core"},
    "server": {"core", "cage", "schema"},
    "client": {"core"},
    "profiling": {"core", "cage", "client"},
    "cli": {"core", "cage", "client", "schema", "server", "profiling"},
}
# Where a module's room is not its first folder: the public client is modelci's own
# modules and the generated operations. The package itself holds only its version, which
# every room may read.
CLIENT_MODULES = ("modelci.client", "modelci.transport", "modelci.graphql_client")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module: str) -> str:
    if module == "modelci":
        return "package"
    if module in CLIENT_MODULES or module.startswith("modelci.graphql_client."):
        return "client"
    return module.split(".")[1]


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports (a name imported from a package counts as
    its submodule when there is one)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level > 1:
                base = base[: len(base) - node.level + 1]
            prefix = ".".join(base) if node.level else ""
            source = ".".join(part for part in (prefix, node.module or "") if part)
            found.add(source)
            found |= {f"{source}.{alias.name}" for alias in node.names}
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = [path for path in PACKAGE.rglob("*.py") if "operations" not in path.parts]
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_rooms_import_only_the_rooms_below_them() -> None:
    graph = import_graph()
    against = sorted(
        f"{module} -> {other}"
        for module, others in graph.items()
        for other in others
        if room_of(other) not in {room_of(module), "package"}
        and room_of(other) not in ALLOWED[room_of(module)]
    )
    assert against == []


def test_the_core_needs_no_framework_database_or_torch() -> None:
    banned = ("strawberry", "starlette", "pymongo", "torch", "graphql", "uvicorn", "onnx")
    offending = []
    for path in (PACKAGE / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offending += [f"{path.name}: {name}" for name in names if name.startswith(banned)]
    assert offending == []


def test_the_graph_sees_the_rooms() -> None:
    """The test itself reads the package: every room has modules and arrows."""
    graph = import_graph()
    rooms = {room_of(module) for module in graph}
    assert set(ALLOWED) <= rooms
    assert graph["modelci"] == set()
    assert graph["modelci.schema.context"] >= {"modelci.core.ports", "modelci.core.usecases"}


# The commands that run or administer a hub on this machine, and the app built of all
# the groups: these may reach the server, the schema and the profiling worker.
HUB_COMMAND_MODULES = {
    "modelci.cli",
    "modelci.cli.__main__",
    "modelci.cli.main",
    "modelci.cli.hub_commands",
    "modelci.cli.token_commands",
    "modelci.cli.archive_commands",
}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    waiting = [start]
    while waiting:
        for other in graph[waiting.pop()] - seen:
            seen.add(other)
            waiting.append(other)
    return seen


def test_client_commands_speak_only_through_the_public_client() -> None:
    """Every other module of the command line (register, ls, jobs, aliases, their shared
    output) reaches neither the server, the schema nor the profiling worker, however
    indirectly."""
    graph = import_graph()
    client_commands = sorted(
        module for module in graph if room_of(module) == "cli" and module not in HUB_COMMAND_MODULES
    )
    assert {"modelci.cli.model_commands", "modelci.cli.console"} <= set(client_commands)
    against = sorted(
        f"{module} -> {other}"
        for module in client_commands
        for other in reachable(graph, module)
        if room_of(other) in {"server", "schema", "profiling"}
    )
    assert against == []


def test_the_command_line_loads_no_hub_room_before_a_hub_command_runs() -> None:
    """`modelci --help` and the client commands start without the server, the schema, the
    profiling worker or the heavy libraries they bring: the hub commands import them when
    they run."""
    code = "import sys, modelci.cli; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = ("modelci.server", "modelci.schema", "modelci.profiling", "strawberry", "pymongo")
    heavy += ("torch", "onnx", "uvicorn", "starlette")
    assert [name for name in loaded if name.startswith(heavy)] == []
