"""The script API documented where users look, and importable: ``from tailgate.run.script import ...``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tailgate.run.script as script_api
from tailgate import nf
from tailgate.cli import app
from tailgate.core.errors import TailgateError
from tailgate.run.script import SCRIPT_NAMES, ScriptRun

DOCS = Path(__file__).resolve().parents[2] / "docs" / "scripts.md"


def docs_example() -> str:
    """The python block of docs/scripts.md's "Importing them explicitly" section."""
    section = DOCS.read_text(encoding="utf-8").split("## Importing them explicitly", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def execute(tmp_path, text, name, args=()):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(text))
    sr = ScriptRun(path, list(args), clock="virtual", out_dir=tmp_path / name)
    return sr, sr.execute()


def comparable(summary):
    return {k: v for k, v in summary.items() if k not in ("script", "wall_s")}


def test_docs_example_runs_and_equals_the_injected_names(tmp_path):
    text = docs_example()
    assert text.startswith("# a script that imports") and "from tailgate.run.script import" in text
    _, imported = execute(tmp_path, text, "imported", ["packets=500"])
    assert imported["packets"] == 500 and imported["stop_reason"] == "input exhausted"
    assert (tmp_path / "imported" / "note.txt").read_text() == "500 packets\n"
    without = "\n".join(line for line in text.splitlines() if not line.startswith("from tailgate"))
    _, injected = execute(tmp_path, without, "injected", ["packets=500"])
    assert comparable(imported) == comparable(injected)  # virtual clock: the same run exactly


def test_imported_names_are_the_injected_objects(tmp_path):
    text = f"""
    import tailgate.run.script as api
    from tailgate.run.script import results_dir as rd, get_arg as ga, {", ".join(sorted(nf.registry()))}

    assert rd is results_dir and api.pipeline is pipeline and api.clock is clock
    assert api.log is log and api.batchy is batchy and api.FlowTemplate is FlowTemplate
    assert ga("n", 1, int) == get_arg("n", 1, int) == 7
    assert PcapSource is globals()["PcapSource"]
    w = api.add_worker("w0")
    src = Source("src", packets=10)
    src >> Sink("sink")
    w.add_task(src)
    api.run(packets=10)
    """
    _, s = execute(tmp_path, text, "same", ["n=7"])
    assert s["packets"] == 10 and s["runs"] == 1


def test_every_injected_name_is_importable_in_a_script(tmp_path):
    functions = ("get_arg", "run", "add_worker")  # the module's functions call the bound methods
    names = list(SCRIPT_NAMES) + sorted(nf.registry())
    text = "import json\nimport tailgate.run.script as api\n"
    text += "names = sorted(k for k in dir() if not k.startswith('__') and k not in ('json', 'api'))\n"
    for n in names:
        text += f"assert callable(api.{n}) and callable({n})\n" if n in functions else f"assert api.{n} is {n}\n"
    text += '(results_dir / "names.json").write_text(json.dumps(names))\nSource("src", packets=1) >> Sink("sink")\n'
    execute(tmp_path, text, "all")
    assert json.loads((tmp_path / "all" / "names.json").read_text()) == sorted(names)


@pytest.mark.parametrize("name", ["results_dir", "get_arg", "run", "log", "pipeline", "clock", "batchy", "add_worker"])
def test_per_run_names_outside_a_script_are_one_clear_line(name):
    with pytest.raises(TailgateError, match=rf"^tailgate\.run\.script\.{name}: no script is running"):
        value = getattr(script_api, name)
        if callable(value):
            value("x")


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        script_api.CheckIPHeaders  # noqa: B018
    with pytest.raises(ImportError):
        from tailgate.run.script import CheckIPHeaders  # noqa: F401


def test_docs_and_help_list_every_name():
    docs = DOCS.read_text(encoding="utf-8")
    res = CliRunner().invoke(app, ["run", "--help"], terminal_width=120)
    assert res.exit_code == 0
    for text in (docs, res.output):
        for n in SCRIPT_NAMES:
            assert re.search(rf"\b{n}\b", text), n
        assert "from tailgate.run.script import" in text
    assert "docs/scripts.md" in res.output and "tailgate run --help" in docs
