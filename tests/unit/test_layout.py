"""Imports go one way (docs/design.md, Modules): no import cycle between the reactor's modules, and
each wing imports only what sits below it.

The graph is read from the source with `ast`, so it holds every import: at module level, inside a
function (an import kept late for start-up time still says which way the code depends), and under
`if TYPE_CHECKING:`. An edge goes from a module to the module it names: `from .chargebee import
X` to the package `reactor.chargebee`, `from . import rechecks` to the module `reactor.jobs.rechecks`;
and to each package above it, whose `__init__.py` Python runs first (`from .trace.store import
TraceLog` in reactor/jobs/context.py also imports `reactor.jobs.trace`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import reactor

PACKAGE_DIR = Path(reactor.__file__).parent

# Cycles that exist today, each as the modules around it starting at the smallest name. A cycle not
# listed here fails the test; a listed one that is gone fails it too, so the list only shrinks.
KNOWN_CYCLES: set[tuple[str, ...]] = set()

# What a wing may import of the reactor: its own modules and those listed (docs/design.md,
# "Modules", draws the same layers). A module in no wing is not checked here beyond having no cycle.
BASE = {
    "reactor.config",
    "reactor.ids",
    "reactor.keys",
    "reactor.logs",
    "reactor.notices",
    "reactor.redaction",
    "reactor.redis_connect",
    "reactor.redis_wait",
    "reactor.reloads",
    "reactor.sites",
    "reactor.timestamps",
}
WINGS: dict[str, set[str]] = {
    # the base every wing reads: settings, what an id may be, key names, logging, notices for a person,
    # the record of rules reloads (which tells a refused edit), redacting secrets, connecting to Redis
    # and waiting for it
    "reactor.config": {"reactor.redis_connect", "reactor.sites"},
    "reactor.sites": set(),
    "reactor.ids": set(),
    "reactor.keys": set(),
    "reactor.logs": {"reactor.redaction"},
    "reactor.notices": {"reactor.keys", "reactor.redaction"},
    "reactor.reloads": {"reactor.keys", "reactor.notices", "reactor.redaction"},
    "reactor.redaction": set(),
    "reactor.redis_connect": set(),
    "reactor.redis_wait": {"reactor.redis_connect"},
    # how a moment is shown to people, for every command, page and reason
    "reactor.timestamps": set(),
    # the rules core is pure: no Redis, no HTTP, no settings
    "reactor.rules": {"reactor.timestamps"},
    # the client, its errors and the shared call budget stand below everything that calls Chargebee;
    # the ids it puts in a path are checked as everywhere else
    "reactor.chargebee": {"reactor.ids"},
    # the Chargebee stand-in shares no code with the reactor it stands in for
    "reactor.sandbox": set(),
    # ingest stores and enqueues by job path: it never imports the jobs it enqueues. It reads
    # Chargebee's list of event types (a leaf of the rules) to bound its metric's label
    "reactor.ingest": {"reactor.config", "reactor.ids", "reactor.keys", "reactor.rules.event_types"},
    "reactor.ingest.enqueue": set(),
    # the layout of an invoice's trace list, for everything that writes it (the webhook and the jobs)
    "reactor.ingest.trace_list": set(),
    # the jobs stand on ingest's event store, Chargebee and the rules
    "reactor.jobs": BASE | {"reactor.chargebee", "reactor.ingest", "reactor.rules"},
    # facts completed into an event: the Event of the envelope, as every job holds it
    "reactor.jobs.facts": {"reactor.chargebee", "reactor.ingest.envelope", "reactor.rules"},
    "reactor.jobs.audit": {"reactor.keys", "reactor.redaction", "reactor.rules", "reactor.ingest.trace_list"},
    # what people run from the CLI, the dashboard and cron reads what the jobs wrote and acts on it;
    # no worker imports it
    "reactor.console": BASE | {"reactor.chargebee", "reactor.ingest", "reactor.jobs", "reactor.rules"},
    # what ops watch reads what the jobs wrote
    "reactor.dashboard": BASE | {"reactor.console", "reactor.ingest", "reactor.jobs", "reactor.rules"},
    # the app puts ingest and the dashboard together
    "reactor.web": BASE | {"reactor.console", "reactor.dashboard", "reactor.ingest", "reactor.jobs", "reactor.rules"},
    # running locally starts Redis, the sandbox and the processes (the web by command, not import)
    "reactor.local": BASE | {"reactor.sandbox"},
    # the stored path of the scheduled sweep (RQ jobs enqueued before it moved)
    "reactor.sweep": {"reactor.jobs"},
    "reactor.gunicorn_conf": {"reactor.config", "reactor.logs", "reactor.redaction"},
    # the gunicorn master's look at the settings and Redis, in a process of its own
    "reactor.redis_probe": BASE,
    # RQ's command line on REDIS_URL, Sentinel URLs too
    "reactor.rq_settings": {"reactor.redis_connect"},
}

# The command sits on top: only `python -m reactor` imports it.
TOP = "reactor.cli"
TOP_IMPORTED_BY = {"reactor.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_modules(path: Path, name: str, known: set[str]) -> Iterator[str]:
    """The reactor modules the module `name` at `path` imports, wherever the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from . import rechecks` names the module reactor.jobs.rechecks; `from .chargebee import
            # ChargebeeClient` the package reactor.chargebee
            names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names]
        else:
            continue
        for imported in names:
            if imported == "reactor" or imported.startswith("reactor."):
                module = owner(imported)
                if module is not None and module != name:
                    yield module
                    yield from parent_packages(module, name, known)


def parent_packages(module: str, importer: str, known: set[str]) -> Iterator[str]:
    """The packages Python runs first when `importer` imports `module`: importing
    `reactor.jobs.trace.store` runs `reactor/jobs/__init__.py` and `reactor/jobs/trace/__init__.py`,
    and whatever they import. A package the importer itself sits in is already being imported."""
    package = module.rpartition(".")[0]
    while package and package != "reactor":
        if package in known and not within(importer, package):
            yield package
        package = package.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    """Module → the reactor modules it imports."""
    known = modules()
    return {name: set(imported_modules(path, name, set(known))) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every simple cycle, as its modules starting at the smallest name (each found once). A cycle
    stays within one strongly connected component, so only the edges inside one are walked: walking
    every path of the whole graph takes minutes once the edges to parent packages are drawn."""
    found: set[tuple[str, ...]] = set()
    component = strongly_connected(graph)
    inside = {name: {n for n in targets if component[n] == component[name]} for name, targets in graph.items()}

    def walk(path: list[str]) -> None:
        start = path[0]
        for nxt in sorted(inside[path[-1]]):
            if nxt == start:
                found.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return found


def strongly_connected(graph: dict[str, set[str]]) -> dict[str, int]:
    """Module → the number of its strongly connected component (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target not in component:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    number = len(set(component.values()))
                    while True:
                        member = stack.pop()
                        component[member] = number
                        if member == node:
                            break
    return component


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def wing_of(name: str) -> str | None:
    matches = [wing for wing in WINGS if within(name, wing)]
    return max(matches, key=len) if matches else None


def test_the_graph_holds_imports_made_inside_functions():
    graph = import_graph()

    assert "reactor.jobs.worker" in graph["reactor.cli.processes"], "`reactor worker` imports it inside the command"
    assert "reactor.chargebee.ratelimit" in graph["reactor.jobs.context"]
    assert graph["reactor.chargebee"] >= {"reactor.chargebee.client", "reactor.chargebee.errors"}


def test_the_graph_holds_the_packages_an_import_runs_first():
    graph = import_graph()

    assert {"reactor.jobs.trace.store", "reactor.jobs.trace"} <= graph["reactor.jobs.context"]
    assert {"reactor.jobs.trace.store", "reactor.jobs.trace", "reactor.jobs"} <= graph["reactor.console.trace.sources"]
    assert "reactor.jobs" not in graph["reactor.jobs.context"], "its own package is already being imported"


def test_no_import_cycle_beyond_the_known_ones():
    found = cycles(import_graph())

    new = sorted(found - KNOWN_CYCLES)
    gone = sorted(KNOWN_CYCLES - found)
    assert not new, "import cycles: " + "; ".join(" → ".join((*cycle, cycle[0])) for cycle in new)
    assert not gone, "no longer cycles, remove them from KNOWN_CYCLES: " + "; ".join(map(str, gone))


def may_import(target: str, allowed: set[str]) -> bool:
    """A module allowed, or a package above one (importing `reactor.rules.event_types` runs
    `reactor/rules/__init__.py`: the cycle test sees what that imports, this one allows it)."""
    return any(within(target, a) or within(a, target) for a in allowed)


def test_each_wing_imports_only_what_sits_below_it():
    upward = []
    for name, targets in sorted(import_graph().items()):
        wing = wing_of(name)
        if wing is None:
            continue
        allowed = {wing, *WINGS[wing]}
        upward += [f"{name} → {target}" for target in sorted(targets) if not may_import(target, allowed)]

    assert not upward, "imports out of their wing: " + "; ".join(upward)


def test_nothing_below_the_command_imports_it():
    graph = import_graph()

    upward = [
        f"{name} → {target}"
        for name, targets in sorted(graph.items())
        for target in sorted(targets)
        if within(target, TOP) and not within(name, TOP) and name not in TOP_IMPORTED_BY
    ]
    back = [f"{name} → {TOP}" for name, targets in sorted(graph.items()) if within(name, TOP) and TOP in targets]
    assert not upward, "imports of the command from below it: " + "; ".join(upward)
    assert not back, "command modules import the package that registers them: " + "; ".join(back)


def late_imports() -> Iterator[tuple[str, int, bool]]:
    """(file:line, whether it says why) for every import made inside a function."""
    for name, path in modules().items():
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    said = any("# late:" in line for line in lines[node.lineno - 1 : node.end_lineno])
                    yield f"{name}:{node.lineno}", node.lineno, said


def test_an_import_kept_inside_a_function_says_why():
    """An import kept late (start-up time, an environment variable read first) says so on its line
    with `# late: <why>`; any other import goes at the top of the module, where the graph shows it."""
    unexplained = [where for where, _, said in late_imports() if not said]
    assert not unexplained, "imports inside functions without a `# late:` reason: " + ", ".join(unexplained)


def test_every_module_belongs_to_a_wing():
    """A new module is placed in the layers above (WINGS) or under the command, so its imports are checked."""
    loose = [
        name
        for name in modules()
        if name not in {"reactor", "reactor.__main__"} and wing_of(name) is None and not within(name, TOP)
    ]
    assert not loose, "modules in no wing of WINGS: " + ", ".join(loose)


def test_docs_design_names_every_module():
    """docs/design.md's Modules section is the map a newcomer reads: a module it does not name is
    one they cannot find, so a new module comes with its line there."""
    design = (PACKAGE_DIR.parent / "docs" / "design.md").read_text(encoding="utf-8")
    unnamed = [
        str(path.relative_to(PACKAGE_DIR))
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if path.name not in {"__init__.py", "__main__.py"}
        and f"`{path.name}`" not in design
        and f"{path.parent.name}/{path.name}`" not in design
    ]
    assert unnamed == [], f"add these to docs/design.md's Modules tables: {unnamed}"


def test_cycles_finds_each_cycle_once_and_none_in_a_tree():
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": {"b"}, "e": {"a"}}

    assert cycles(graph) == {("a", "b", "c"), ("b", "d")}
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == set()
