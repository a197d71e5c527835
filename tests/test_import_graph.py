"""The import graph of the package: no cycle, counting imports inside functions, and no
library module importing the command line (docs/architecture.md)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = {"cnngraph": ROOT / "cnngraph", "cnngraph.dsl": ROOT / "dsl", "cnngraph.backends": ROOT / "backends"}


def modules() -> dict:
    """{module name: path} of every module of the package (dsl/ and backends/ as installed)."""
    out = {}
    for pkg, folder in TREES.items():
        for p in folder.rglob("*.py"):
            rel = p.relative_to(folder).with_suffix("")
            parts = [x for x in rel.parts if x != "__init__"]
            name = ".".join([pkg, *parts])
            if name.startswith("cnngraph.dsl.") or name.startswith("cnngraph.backends.") or \
                    not any(name.startswith(f"{k}.") for k in ("cnngraph.dsl", "cnngraph.backends")):
                out.setdefault(name, p)
    return out


def imports(name: str, path: Path, known) -> set:
    """The package modules ``name`` imports anywhere in its text (functions included)."""
    is_pkg = path.name == "__init__.py"
    base = name if is_pkg else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = base.split(".")
                mod = ".".join(up[:len(up) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph():
    known = modules()
    return {n: imports(n, p, known) for n, p in known.items()}


def test_no_import_cycle():
    g = graph()
    g.pop("cnngraph", None)  # the lazy top-level package (PEP 562) names modules, it is not below them
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_no_library_module_imports_the_cli():
    g = graph()
    bad = [(n, m) for n, ms in g.items() if not n.startswith("cnngraph.cli") for m in ms if m.startswith("cnngraph.cli")]
    assert bad == []
