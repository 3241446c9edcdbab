"""The layering rules, checked on the source: imports point down, seed packages stay apart, no cycles,
no private names across modules, imports at the top of files.

Layers, lowest first (docs/architecture.md draws them):
core < measure < packet < dataplane < nf < {batchy, dispatch, ...seed systems} < {run, bench} < cli.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tailgate"

LAYER = {
    "core": 0,
    "measure": 1,
    "packet": 2,
    "dataplane": 3,
    "nf": 4,
    # one package per seed system, side by side
    "batchy": 5,
    "dispatch": 5,
    "faas": 5,
    "nba": 5,
    "net": 5,
    "run": 6,
    "bench": 6,
    "cli": 7,
}
SEEDS = {name for name, layer in LAYER.items() if layer == 5}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(sub) for sub in ast.walk(node))
    return ids


def _imports():
    """(file, line, importer module, imported module, names, runtime?, top-level?) for every tailgate import."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        me = _module_name(path)
        type_only = _type_checking_nodes(tree)
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "tailgate" or node.module.startswith("tailgate."):
                    names = [a.name for a in node.names]
                    targets = [node.module]
                    if node.module == "tailgate" or all(
                        (SRC.parent / node.module.replace(".", "/") / a).with_suffix(".py").exists()
                        or (SRC.parent / node.module.replace(".", "/") / a / "__init__.py").exists()
                        for a in names
                    ):
                        # `from tailgate.pkg import submodule`: the submodules are what is imported
                        targets = [f"{node.module}.{a}" for a in names]
                    for t in targets:
                        out.append((path, node.lineno, me, t, names, id(node) not in type_only, id(node) in top))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("tailgate."):
                        out.append((path, node.lineno, me, a.name, [], id(node) not in type_only, id(node) in top))
    return out


IMPORTS = _imports()


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC.parents[1])}:{line}"


def test_every_package_has_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    loose = sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"modules loose at the package root (put them in a layer's package): {loose}"
    assert packages <= set(LAYER), f"packages without a layer in tests/test_layers.py: {sorted(packages - set(LAYER))}"


def test_imports_point_down():
    bad = []
    for path, line, me, target, _names, _runtime, _top in IMPORTS:
        a, b = _package(me), _package(target)
        if a is None or b is None or a == b:
            continue
        if LAYER[b] > LAYER[a]:
            bad.append(f"{_where(path, line)}: {me} ({a}, layer {LAYER[a]}) imports {target} ({b}, layer {LAYER[b]})")
        elif a in SEEDS and b in SEEDS:
            bad.append(f"{_where(path, line)}: seed package {a} imports seed package {b}")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p) for p in SRC.rglob("*.py")}
    for _path, _line, me, target, _names, runtime, _top in IMPORTS:
        if runtime and target in modules and target != me:
            graph.setdefault(me, set()).add(target)
    # a package's __init__ importing its own submodules is how Python packages work: not a cycle
    for me in list(graph):
        graph[me] = {t for t in graph[me] if not me.startswith(t + ".") and not (me in modules and t.startswith(me + ".") and me.count(".") >= 1 and (SRC.parent / me.replace(".", "/") / "__init__.py").exists())}
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]) if t in stack else f"{m} -> {t}")
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_names_across_modules():
    bad = [
        f"{_where(path, line)}: {me} imports {', '.join(n for n in names if n.startswith('_'))} from {target}"
        for path, line, me, target, names, _runtime, _top in IMPORTS
        if any(n.startswith("_") and not n.startswith("__") for n in names) and target != me
    ]
    assert not bad, "private names imported from another module:\n" + "\n".join(bad)


def test_imports_at_the_top():
    """A tailgate import inside a function is allowed only when deferred on purpose, with a comment
    saying so (``# deferred: ...``) on the line or the line above."""
    bad = []
    for path, line, _me, target, _names, runtime, top in IMPORTS:
        if top or not runtime:
            continue
        lines = path.read_text().split("\n")
        context = " ".join(lines[max(0, line - 2): line]).lower()
        if "deferred" not in context:
            bad.append(f"{_where(path, line)}: import of {target} inside a function (move it to the top, or say why it is deferred)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("seed", sorted(SEEDS & {p.name for p in SRC.iterdir() if p.is_dir()}))
def test_seed_policies_import_no_runtime(seed):
    """A seed package's pure policy/model modules never import its runtimes (its ``live`` sub-package)."""
    bad = [
        f"{_where(path, line)}: {me} imports {target}"
        for path, line, me, target, _names, runtime, _top in IMPORTS
        if runtime and me.startswith(f"tailgate.{seed}.") and ".live" not in me and target.startswith(f"tailgate.{seed}.live")
    ]
    assert not bad, "policy/model modules importing a runtime:\n" + "\n".join(bad)
