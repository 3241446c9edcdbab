"""docs/architecture.md stays true: its import table is the code's, and its three worked examples
(a network function, a request-scheduling policy, a Batchy controller) do what it says they do.

The doc marks what this file checks with HTML comments:

* ``<!-- example: PATH -->`` before a fenced block: the block is the file PATH, verbatim;
* ``<!-- example: NAME -->`` (no slash): a block the tests run or apply by that name;
* ``<!-- imports: begin -->`` ... ``<!-- imports: end -->``: the package import table, which
  ``.venv/bin/python tests/test_architecture.py`` prints afresh from ``src/tailgate``.
"""

from __future__ import annotations

import ast
import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tailgate.dataplane.drive import drive
from tailgate.run.script import ScriptRun

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
SRC = ROOT / "src" / "tailgate"

#: Each package's height in the doc's picture, top down (a package not listed here fails the test).
#: A package may import only packages drawn lower; the systems stand side by side, each with its
#: runtime above its pure part (dispatch/live/ above dispatch/).
HEIGHT = {"cli": 0, "bench": 1, "run": 2, "dispatch.live": 3, "batchy": 4, "dispatch": 4, "faas": 4, "nf": 5,
          "dataplane": 6, "packet": 7, "measure": 8, "core": 9}
#: The system packages: none imports another (a sub-package belongs to its system).
SYSTEMS = {"batchy", "dispatch", "faas", "nba", "net"}
#: The rows of the doc's import table, top down.
TABLE_ORDER = ("cli", "bench", "run", "batchy", "dispatch", "dispatch.live", "nf", "dataplane", "packet",
               "measure", "core")


# -- reading the doc ---------------------------------------------------------------------------------
def doc_blocks() -> dict[str, str]:
    """Every marked fenced block of the doc, by its marker name."""
    text = DOC.read_text()
    found = re.findall(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
    blocks = dict(found)
    assert len(blocks) == len(found), "two doc blocks share a marker name"
    return blocks


def doc_import_table() -> str:
    m = re.search(r"<!-- imports: begin -->\n```text\n(.*?)```\n<!-- imports: end -->", DOC.read_text(), flags=re.DOTALL)
    assert m, "docs/architecture.md lost its <!-- imports: begin/end --> block"
    return m.group(1)


# -- the import table, from the code -----------------------------------------------------------------
def _package(module: str) -> str | None:
    """``tailgate.dispatch.live.server`` -> ``dispatch.live``; ``tailgate.nf.ip`` -> ``nf``."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    if parts[0] == "dispatch" and len(parts) > 1 and parts[1] == "live":
        return "dispatch.live"
    return parts[0]


def _type_checking_only(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(sub) for sub in ast.walk(node))
    return ids


def package_imports() -> dict[str, set[str]]:
    """Package -> the other tailgate packages its modules import at run time (anywhere in a file)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        me = _package("tailgate." + ".".join(path.relative_to(SRC).with_suffix("").parts))
        if me is None or me == "__init__":
            continue
        edges.setdefault(me, set())
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "tailgate":
                    targets = [f"tailgate.{a.name}" for a in node.names]
                elif node.module.startswith("tailgate."):
                    targets = [node.module + "." + a.name for a in node.names]
                else:
                    continue
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("tailgate.")]
            else:
                continue
            for t in targets:
                other = _package(t)
                if other and other != me:
                    edges[me].add(other)
    return edges


def import_table() -> str:
    """The doc's import table: one line per package, top layer first."""
    edges = package_imports()
    order = [p for p in TABLE_ORDER if p in edges] + sorted(set(edges) - set(TABLE_ORDER))
    width = max(map(len, order))
    lines = [f"{p.ljust(width)}  imports  {' '.join(sorted(edges[p], key=_row)) or '(nothing)'}" for p in order]
    return "\n".join(lines) + "\n"


def _row(p: str) -> int:
    return TABLE_ORDER.index(p) if p in TABLE_ORDER else -1


def test_the_import_table_is_the_code_s():
    fresh = import_table()
    assert doc_import_table() == fresh, (
        "docs/architecture.md's import table no longer matches src/tailgate; replace it with the output of "
        f"`.venv/bin/python tests/test_architecture.py`:\n{fresh}"
    )


def test_every_package_is_in_the_picture_and_imports_point_down():
    edges = package_imports()
    assert set(edges) <= set(HEIGHT), f"packages missing from the doc's picture: {sorted(set(edges) - set(HEIGHT))}"
    for pkg, deps in edges.items():
        for dep in deps:
            assert HEIGHT[dep] > HEIGHT[pkg], f"{pkg} imports {dep}, which the doc's picture draws beside or above it"
            mine, theirs = pkg.split(".")[0], dep.split(".")[0]
            assert not (mine in SYSTEMS and theirs in SYSTEMS and mine != theirs), f"system {pkg} imports system {dep}"


def _module_imports(path: Path) -> set[str]:
    """Every tailgate module (or package) ``path`` imports at run time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_only(tree)
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tailgate"):
            for a in node.names:      # `from tailgate.batchy import model` imports tailgate.batchy.model
                sub = SRC.parent / node.module.replace(".", "/") / a.name
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                out.add(f"{node.module}.{a.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("tailgate"))
    return out


def test_batchy_s_pure_modules_import_no_runtime():
    pure = ("model", "state", "controllers")
    allowed = ("tailgate.core", "tailgate.measure", "tailgate.packet") + tuple(f"tailgate.batchy.{m}" for m in pure)
    for name in pure:
        for mod in _module_imports(SRC / "batchy" / f"{name}.py"):
            ok = any(mod == a or mod.startswith(a + ".") for a in allowed)
            assert ok, f"batchy/{name}.py imports {mod}: a controller or model must not reach a runtime"


def test_the_doc_s_file_examples_are_the_files():
    blocks = doc_blocks()
    files = {k: v for k, v in blocks.items() if "/" in k}
    assert set(files) >= {"examples/extend/drop_short.py", "examples/extend/aimd_controller.py"}
    for rel, code in files.items():
        assert (ROOT / rel).read_text() == code, f"docs/architecture.md's copy of {rel} differs from the file"


# -- (a) a network function ----------------------------------------------------------------------------
def test_a_new_network_function_processes_frames(tmp_path):
    script = ROOT / "examples" / "extend" / "drop_short.py"
    sr = ScriptRun(script, ["packets=5000"], clock="virtual", out_dir=tmp_path / "run")
    sr.execute()
    runts = next(m for m in sr.pipeline if m.name == "runts")
    c = runts.counters()
    assert c["packets_in"] == 5000
    assert c["drops.too_short"] > 0 and c["packets_out"] > 0           # frames of 60..68 bytes, cut at 64
    assert c["drops.too_short"] + c["packets_out"] == 5000
    assert next(m for m in sr.pipeline if m.name == "sink").counters()["packets_in"] == c["packets_out"]
    assert runts.time_ns > 0                                            # the virtual clock charged its cost_ns

    # The same class on crafted frames: a 60-byte runt is dropped, a 64-byte frame passes untouched.
    fresh = type(runts)(min_bytes=64)
    out, _ = drive(fresh, [b"\x01" * 60, b"\x02" * 64])
    assert out == {0: [b"\x02" * 64]}
    assert fresh.counters()["drops.too_short"] == 1


# -- (b) a request-scheduling policy -------------------------------------------------------------------
def _with_policy(tmp_path: Path) -> Path:
    """A copy of the package with the doc's policy change applied; returns its ``src`` folder."""
    blocks = doc_blocks()
    src = tmp_path / "src"
    shutil.copytree(SRC, src / "tailgate", ignore=shutil.ignore_patterns("__pycache__"))
    policy = src / "tailgate" / "dispatch" / "policy.py"
    text = policy.read_text()
    m = re.search(r"\ndef assign_all\(.*?(?=\n@njit|\ndef |\nclass |\Z)", text, flags=re.DOTALL)
    assert m, "dispatch/policy.py has no assign_all(): update docs/architecture.md's policy example"
    body = m.group(0)
    k = body.rfind("\n    else:\n")
    assert k >= 0, "assign_all() has no final `else:` to add a branch before: update docs/architecture.md"
    body = body[: k + 1] + blocks["policy-branch"] + body[k + 1 :]
    text = text[: m.start()] + body + text[m.end() :]
    policy.write_text(text.rstrip("\n") + "\n\n\n" + blocks["policy-kernel"])
    return src


def test_a_new_policy_schedules_a_simulated_workload(tmp_path):
    src = _with_policy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(src)}
    probe = "import tailgate, sys; sys.stdout.write(tailgate.__file__)\n"
    code = probe + "print()\n" + doc_blocks()["policy-use"]
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    where, printed = done.stdout.split("\n", 1)
    assert where.startswith(str(src)), f"the subprocess imported {where}, not the patched copy"
    name, counters = printed.strip().splitlines()[-1].split(" ", 1)
    counters = ast.literal_eval(counters)
    assert name == "lqf"
    assert counters["dispatched"] == counters["completed"] == 20_000 and counters["drops"] == 0


# -- (c) a Batchy controller ----------------------------------------------------------------------------
def test_a_new_controller_drives_a_batchy_run_under_the_virtual_clock(tmp_path):
    script = ROOT / "examples" / "extend" / "aimd_controller.py"
    slo_ns = 5_000        # tighter than the example's default, so that both of AIMD's rules act
    sr = ScriptRun(script, [f"delay_slo_tight={slo_ns}", "rounds=10"], clock="virtual", out_dir=tmp_path / "run")
    sr.execute()
    assert sr.batchy.controller_name == "aimd"
    rows = list(csv.DictReader((sr.out_dir / "aimd.csv").open()))
    assert len(rows) == 10
    step, top = 4, 32
    for flow, module, slo in (("tight", "bypass1", slo_ns), ("loose", "bypass2", 100_000)):
        q_before, rules = 0, set()
        for r in rows:
            late = float(r[f"{flow}:delay"]) > slo
            want = q_before // 2 if late else min(q_before + step, top)
            assert int(r[f"{module}:control"]) == want, (flow, r["t"], q_before, r[f"{flow}:delay"])
            rules.add("decrease" if late else "increase")
            q_before = want
        assert rules == ({"increase", "decrease"} if flow == "tight" else {"increase"}), (flow, rules)
    assert int(rows[-1]["bypass2:control"]) == top                    # the loose flow's NF is fully batched


if __name__ == "__main__":
    sys.stdout.write(import_table())
