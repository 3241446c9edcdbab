"""No code outside ``tailgate.dataplane`` touches the data plane's private attributes.

The underscore attributes that the classes of ``dataplane/module.py``, ``runtime.py`` and
``graph.py`` define (``self._x = ...``, a class-level ``_x``, ``def _x``) are read from their
source. Every other file under ``src/tailgate`` is then searched for ``obj._x`` (and
``getattr(obj, "_x")``, ``hasattr``, ``setattr``, ``delattr``) with one of those names:

- a ``Module`` name is allowed only where the file defines the same name on a class of its own
  that is *not* a Module (``PcapWriter._out``); a network function that uses ``self._pending``
  would read or shadow the Module's own wiring;
- a runtime or graph name (``_calls``, ``_next``, ...) is allowed where the file, or a tailgate
  module it imports, defines that name on a class of its own (``FeasDir._next``,
  ``BatchSocket._calls``): those are that class's attributes, not the runtime's.

A failure names file:line and the attribute; the fix is a public method on the data plane's side
(``Module.splice_in_front``, ``rewire``, ``feeders``, ``open_outputs``/``drain_outputs``, ...).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tailgate"
DATAPLANE = SRC / "dataplane"
MODULE_FILE = DATAPLANE / "module.py"
OTHER_FILES = (DATAPLANE / "runtime.py", DATAPLANE / "graph.py")
ATTR_FUNCS = ("getattr", "hasattr", "setattr", "delattr")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _class_names(cls: ast.ClassDef) -> set[str]:
    """The underscore attributes a class defines: class-level names, methods, ``self._x = ...``."""
    out: set[str] = set()
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
            out.add(node.name)
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and _private(n.id):
                    out.add(n.id)
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            out.add(node.attr)
    return out


def _classes(tree: ast.AST) -> list[ast.ClassDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]


def _base_names(cls: ast.ClassDef) -> set[str]:
    out = set()
    for b in cls.bases:
        if isinstance(b, ast.Name):
            out.add(b.id)
        elif isinstance(b, ast.Attribute):
            out.add(b.attr)
    return out


TREES = {p: ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in sorted(SRC.rglob("*.py"))}

#: class name -> the names of its bases, over the whole package (to tell Modules apart)
BASES: dict[str, set[str]] = {}
for _tree in TREES.values():
    for _c in _classes(_tree):
        BASES.setdefault(_c.name, set()).update(_base_names(_c))


def _is_module_class(name: str, seen: frozenset = frozenset()) -> bool:
    if name == "Module":
        return True
    if name in seen:
        return False
    return any(_is_module_class(b, seen | {name}) for b in BASES.get(name, ()))


def _defined(path: Path) -> set[str]:
    return set().union(*(_class_names(c) for c in _classes(TREES[path])), set())


def _defined_outside_modules(path: Path) -> set[str]:
    return set().union(*(_class_names(c) for c in _classes(TREES[path]) if not _is_module_class(c.name)), set())


MODULE_NAMES = _defined(MODULE_FILE)
OTHER_NAMES = set().union(*(_defined(p) for p in OTHER_FILES)) - MODULE_NAMES


def _module_file(dotted: str) -> Path | None:
    base = SRC.parent / dotted.replace(".", "/")
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p in TREES:
            return p
    return None


def _imported_files(tree: ast.AST) -> set[Path]:
    out = set()
    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tailgate"):
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names if a.name.startswith("tailgate")]
        out.update(p for p in map(_module_file, mods) if p is not None)
    return out


def _uses(tree: ast.AST):
    """(line, name) of every ``._x`` and ``getattr(obj, "_x")``-style access."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            yield node.lineno, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTR_FUNCS
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value)):
            yield node.lineno, node.args[1].value


def _violations() -> list[str]:
    bad = []
    for path, tree in TREES.items():
        if DATAPLANE in path.parents:
            continue
        own = _defined_outside_modules(path)
        near = _defined(path).union(*(_defined(p) for p in _imported_files(tree)))
        for line, name in sorted(_uses(tree)):
            if name in MODULE_NAMES and name not in own:
                bad.append(f"{path.relative_to(SRC.parents[1])}:{line}: .{name} is Module's private attribute")
            elif name in OTHER_NAMES and name not in near:
                bad.append(f"{path.relative_to(SRC.parents[1])}:{line}: .{name} is the runtime's or graph's private attribute")
    return bad


def test_the_collected_names_are_the_real_ones():
    # a guard on the parser: the wiring Batchy once rewired by hand, and a runtime cache
    assert {"_ogates", "_feeders", "_pending", "_ogate_pending", "_out", "_instances"} <= MODULE_NAMES
    assert {"_calls", "_roots"} <= OTHER_NAMES


def test_no_private_dataplane_attribute_outside_dataplane():
    bad = _violations()
    assert not bad, "private data-plane attributes used outside tailgate.dataplane:\n" + "\n".join(bad)


def test_the_check_catches_a_use(tmp_path, monkeypatch):
    """The check fails on what it is meant to catch (and lets a file's own non-Module class be)."""
    fake = SRC / "batchy" / "_probe_private.py"
    tree = ast.parse(
        "class Holder:\n"
        "    def __init__(self):\n"
        "        self._out = []\n"                 # its own, not a Module: fine
        "def splice(m, buf):\n"
        "    m._feeders[0].clear()\n"               # Module's: caught
        "    return getattr(buf, '_pending')\n"     # caught too
    )
    monkeypatch.setitem(TREES, fake, tree)
    bad = [b for b in _violations() if "_probe_private" in b]
    assert bad == [
        "src/tailgate/batchy/_probe_private.py:5: ._feeders is Module's private attribute",
        "src/tailgate/batchy/_probe_private.py:6: ._pending is Module's private attribute",
    ], bad
