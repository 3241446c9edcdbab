"""The function manifest: a good one loads; each kind of mistake is one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailgate.faas.live.registry import ManifestError, load_manifest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "faas" / "manifest.yaml"

GOOD = """
functions:
  - name: f
    handler: mod:fn
    kind: cpu
"""


def test_the_example_manifest_loads():
    m = load_manifest(EXAMPLE)
    assert {"fib", "noop", "construct"} <= set(m.functions)
    fib = m.functions["fib"]
    assert (fib.module, fib.attr, fib.kind) == ("handlers", "fib", "cpu")
    assert fib.memory_mb > 0 and fib.timeout_s > 0
    assert m.path == [str(EXAMPLE.parent)]
    assert m.strategy["name"] == "faasbatch"


def test_defaults_fill_the_limits(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(GOOD)
    f = load_manifest(p).functions["f"]
    assert (f.memory_mb, f.cpu_share, f.timeout_s, f.index) == (512, 1.0, 30.0, 0)


@pytest.mark.parametrize("text, key", [
    ("functions: [", "not valid YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("functions: []\n", "functions: must be a non-empty list"),
    ("functions:\n  - {handler: m:f, kind: cpu}\n", "functions[0].name: missing"),
    ("functions:\n  - {name: 'a b', handler: m:f, kind: cpu}\n", "functions[0].name: must match"),
    ("functions:\n  - {name: a, handler: m.f, kind: cpu}\n", "functions[0].handler: must be module:function"),
    ("functions:\n  - {name: a, handler: m:f, kind: gpu}\n", "functions[0].kind: must be cpu or io, got 'gpu'"),
    ("functions:\n  - {name: a, handler: m:f, kind: cpu}\n  - {name: a, handler: m:g, kind: io}\n",
     "functions[1].name: 'a' is named twice"),
    ("functions:\n  - {name: a, handler: m:f, kind: cpu, limits: {memory_mb: -5}}\n",
     "functions[0].limits.memory_mb: must be in"),
    ("functions:\n  - {name: a, handler: m:f, kind: cpu, limits: {timeout_s: soon}}\n",
     "functions[0].limits.timeout_s: must be a number"),
    ("functions:\n  - {name: a, handler: m:f, kind: cpu, limits: {disk_mb: 5}}\n",
     "functions[0].limits.disk_mb: unknown key"),
    ("functions:\n  - {name: a, handler: m:f, kind: cpu, colour: red}\n", "functions[0].colour: unknown key"),
    ("strategy: {name: fastest}\nfunctions:\n  - {name: a, handler: m:f, kind: cpu}\n", "strategy.name: unknown"),
    ("pool: {max_sandboxes: 3}\nfunctions:\n  - {name: a, handler: m:f, kind: cpu}\n", "pool.max_sandboxes: unknown"),
    ("functoins: []\n", "functoins: unknown key"),
])
def test_a_bad_manifest_is_one_line_naming_file_and_key(tmp_path, text, key):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)), msg
    assert key in msg, msg


def test_a_missing_manifest_is_named(tmp_path):
    with pytest.raises(ManifestError, match="nope.yaml: cannot read"):
        load_manifest(tmp_path / "nope.yaml")
