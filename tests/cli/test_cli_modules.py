"""``tailgate modules NAME``: the manual is the docstring, then the argument table generated from
the class's ``Arg`` declarations, then what else the class declares."""

from typer.testing import CliRunner

from tailgate import nf
from tailgate.cli import app
from tailgate.cli.modules import manual
from tailgate.core.args import render_args


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_manual_is_the_docstring_then_the_generated_table():
    res = invoke("modules", "RateLimiter")
    assert res.exit_code == 0
    out = res.stdout
    assert out.index("Example") < out.index("Arguments:") < out.index("drop reasons: over_rate")
    row = next(line for line in out.splitlines() if line.lstrip().startswith("burst_bits"))
    assert row.split()[:5] == ["burst_bits", "float", "12144", "bits", ">="]
    assert "one 1518-byte frame" in row
    assert render_args(nf.RateLimiter.args) in out


def test_every_manual_has_a_table_with_a_unit_in_every_row():
    for name, cls in nf.registry().items():
        text = manual(cls)
        if not cls.args:
            assert "Arguments: none." in text, name
            continue
        lines = text[text.index("Arguments:"):].splitlines()
        header, rows = lines[1].split(), lines[2 : 2 + len(cls.args)]
        assert header == ["name", "type", "default", "unit", "range", "help"], name
        unit_col = lines[1].index("unit")
        for a, row in zip(cls.args, rows):
            assert row.split()[0] == a.name and row[unit_col:].split()[0] == a.unit, (name, row)


def test_markdown_manual():
    res = invoke("modules", "NAPT", "--markdown")
    assert res.exit_code == 0
    out = res.stdout
    assert out.startswith("## NAPT")
    assert "| name | type | default | unit | range | help |" in out
    assert "| `timeout_s` | float | `300` | s | >= 1e-06 | idle time after which a mapping expires |" in out
    assert "| `external_ip` | any | `required` | - |" in out
    assert "- drop reasons: not_ipv4, unsupported, fragment, malformed, no_mapping, ports_exhausted" in out
